/* The unfused contrastive loss, for comparison: S = z z^T by CLBlast into a stored (2N, 2N)
 * matrix, cl/contrastive_unfused.cl for the rows and for G + G^T, CLBlast again for the
 * product with z. Normalisation and the statistics are the fused path's kernels. */
#include <stdio.h>

#include <clblast_c.h>

#include "check.h"
#include "loss_internal.h"

#define ROWS_WG   64 /* work-items per group of unfused_rows, at most */
#define GRAD_SIDE 16 /* unfused_grad's work-groups are GRAD_SIDE x GRAD_SIDE, at most */

static clcl_status blast_check(CLBlastStatusCode code, const char *what) {
    if (code == CLBlastSuccess)
        return CLCL_OK;
    return clcl_fail(code < -1000 ? CLCL_ERR_ARGUMENT : code,
                     "contrastive loss (unfused): CLBlastSgemm for %s failed with CLBlast "
                     "status %d (%s)",
                     what, (int)code, clcl_status_name(code));
}

/* The largest power of two <= limit and <= cap. */
static size_t pow2_at_most(size_t limit, size_t cap) {
    size_t v = 1;
    while (2 * v <= limit && 2 * v <= cap)
        v *= 2;
    return v;
}

clcl_status clcl_loss_unfused_prepare(clcl_loss *loss) {
    char options[32];
    size_t wg;

    snprintf(options, sizeof options, "-DLOSS_CAP=%d", loss->cfg.cap);
    CLCL_TRY(clcl_context_kernel(loss->ctx, "contrastive_unfused", "unfused_rows", options,
                                 &loss->rows));
    CLCL_TRY(clcl_context_kernel(loss->ctx, "contrastive_unfused", "unfused_grad", options,
                                 &loss->grad));
    CLCL_TRY(clcl_kernel_max_work_group(loss->ctx, loss->rows, &wg));
    loss->rows_local = pow2_at_most(wg, ROWS_WG);
    CLCL_TRY(clcl_kernel_max_work_group(loss->ctx, loss->grad, &wg));
    loss->grad_local = 1;
    while (loss->grad_local < GRAD_SIDE && 4 * loss->grad_local * loss->grad_local <= wg)
        loss->grad_local *= 2;
    size_t n2 = (size_t)loss->n2;
    return clcl_buffer_create(loss->ctx, n2 * n2 * sizeof(float),
                              "the unfused loss's similarity matrix (2N, 2N)", &loss->sim);
}

clcl_status clcl_loss_unfused_forward(clcl_loss *loss, const loss_params *p) {
    cl_command_queue q = clcl_context_queue(loss->ctx);
    size_t n2 = (size_t)loss->n2, d = (size_t)loss->dim;

    /* S (2N, 2N) = z z^T */
    CLCL_TRY(blast_check(CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                                      CLBlastTransposeYes, n2, n2, d, 1.0f, loss->z, 0, d, loss->z,
                                      0, d, 0.0f, loss->sim, 0, n2, &q, NULL),
                         "S = z z^T"));

    /* per-row results */
    CLCL_TRY(clcl_kernel_args(loss->rows, CLCL_ARG_MEM(loss->sim), CLCL_ARG_MEM(p->labels),
                              CLCL_ARG_MEM(loss->rowf), CLCL_ARG_MEM(loss->rowi),
                              CLCL_ARG_INT(loss->n2), CLCL_ARG_FLOAT(p->inv_tau),
                              CLCL_ARG_FLOAT(p->theta), CLCL_ARG_FLOAT(p->weight),
                              CLCL_ARG_INT(p->mode), CLCL_ARG_INT(p->has_labels)));
    return clcl_launch(loss->ctx, loss->rows, 1, &n2, &loss->rows_local);
}

clcl_status clcl_loss_unfused_backward(clcl_loss *loss, const loss_params *p, cl_mem dz) {
    cl_command_queue q = clcl_context_queue(loss->ctx);
    size_t n2 = (size_t)loss->n2, d = (size_t)loss->dim;

    /* S becomes A = G + G^T in place */
    CLCL_TRY(clcl_kernel_args(
        loss->grad, CLCL_ARG_MEM(loss->sim), CLCL_ARG_MEM(loss->rowf), CLCL_ARG_MEM(loss->rowi),
        CLCL_ARG_INT(loss->n2), CLCL_ARG_FLOAT(p->inv_tau), CLCL_ARG_FLOAT(p->theta),
        CLCL_ARG_FLOAT(p->weight), CLCL_ARG_INT(p->mode), CLCL_ARG_FLOAT(p->scale)));
    size_t global[2] = {n2, n2}, local[2] = {loss->grad_local, loss->grad_local};
    CLCL_TRY(clcl_launch(loss->ctx, loss->grad, 2, global, local));

    /* dz (2N, d) = A z */
    return blast_check(CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo,
                                    n2, d, n2, 1.0f, loss->sim, 0, n2, loss->z, 0, d, 0.0f, dz, 0,
                                    d, &q, NULL),
                       "dz = A z");
}
