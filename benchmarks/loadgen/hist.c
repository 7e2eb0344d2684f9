/* The log-linear latency histogram (see loadgen.h). */
#include "loadgen.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    if (e > HIST_MAX_EXP)
        return HIST_BUCKETS - 1;
    unsigned shift = e - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static double bucket_mid(unsigned i)
{
    if (i < HIST_SUB)
        return (double)i;
    unsigned shift = i / HIST_SUB - 1;
    uint64_t low = (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
    return (double)low + (double)((uint64_t)1 << shift) / 2.0;
}

void hist_add(struct hist *h, uint64_t ns)
{
    h->buckets[bucket_of(ns)]++;
    h->count++;
    h->sum += (double)ns;
    if (ns > h->max)
        h->max = ns;
}

double hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0.0;
    /* the rank of the value wanted, 1-based */
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            double v = bucket_mid(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}
