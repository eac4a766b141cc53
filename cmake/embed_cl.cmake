# Turns every OpenCL source given in SOURCES into one C file, OUTPUT, holding a
# table of (program name, source text). Run at build time by CMakeLists.txt.
set(body "")
set(table "")
foreach(src IN LISTS SOURCES)
    get_filename_component(name "${src}" NAME_WE)
    file(READ "${src}" hex HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
    string(APPEND body "static const char cl_${name}[] = {${hex} 0x00};\n")
    string(APPEND table "    {\"${name}\", cl_${name}},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp"
    "/* Generated from the files in cl/ by cmake/embed_cl.cmake; do not edit. */\n"
    "#include \"embedded.h\"\n"
    "${body}"
    "const struct clcl_embedded_program clcl_embedded_programs[] = {\n${table}    {0, 0}};\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
