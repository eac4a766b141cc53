/* xoshiro256** (Blackman and Vigna) seeded through splitmix64. */
#include <math.h>

#include "clcl/rng.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void clcl_rng_seed(clcl_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

void clcl_rng_seed_stream(clcl_rng *rng, uint64_t seed, uint64_t stream) {
    uint64_t mixed = seed;
    uint64_t a = splitmix64(&mixed);
    mixed = stream ^ a;
    clcl_rng_seed(rng, splitmix64(&mixed) ^ rotl(a, 17));
}

uint64_t clcl_rng_u64(clcl_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double clcl_rng_uniform(clcl_rng *rng) {
    return (double)(clcl_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double clcl_rng_range(clcl_rng *rng, double lo, double hi) {
    return lo + (hi - lo) * clcl_rng_uniform(rng);
}

uint64_t clcl_rng_below(clcl_rng *rng, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t x;
    do
        x = clcl_rng_u64(rng);
    while (x >= limit);
    return x % n;
}

double clcl_rng_normal(clcl_rng *rng) {
    double u1 = 1.0 - clcl_rng_uniform(rng); /* (0, 1]: log is finite */
    double u2 = clcl_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void clcl_rng_shuffle(clcl_rng *rng, int *idx, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)clcl_rng_below(rng, (uint64_t)i + 1);
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
