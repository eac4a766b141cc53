/* A small seeded generator (xoshiro256**, seeded through splitmix64) whose stream is the
 * same on every machine, so a seed fixes initial weights, shuffles and augmentations
 * whatever the device. Its state is plain data, saved in checkpoints. */
#ifndef CLCL_RNG_H
#define CLCL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} clcl_rng;

void clcl_rng_seed(clcl_rng *rng, uint64_t seed);
/* An independent stream for `stream` (an epoch, an image, a worker) derived from a seed. */
void clcl_rng_seed_stream(clcl_rng *rng, uint64_t seed, uint64_t stream);
uint64_t clcl_rng_u64(clcl_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double clcl_rng_uniform(clcl_rng *rng);
/* Uniform in [lo, hi). */
double clcl_rng_range(clcl_rng *rng, double lo, double hi);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t clcl_rng_below(clcl_rng *rng, uint64_t n);
/* Standard normal (Box-Muller; no cached second value, so the state alone fixes the
 * stream). */
double clcl_rng_normal(clcl_rng *rng);
/* Fisher-Yates shuffle of idx[0..n). */
void clcl_rng_shuffle(clcl_rng *rng, int *idx, int n);

#endif
