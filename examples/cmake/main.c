/* Classifies the bundled MNIST test digits with the same model at 2 and 8 planes, both
 * emitted from one .strata file and linked into this one program. With STRATA_MLIR it also
 * runs K = 8 built through the MLIR backend and counts the images whose logits are
 * bit-identical to the C build's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnist_k2.h"
#include "mnist_k8.h"
#ifdef STRATA_MLIR
#include "mnist_k8_mlir.h"
#endif

/* Reads a little-endian .npy file of `want_elem`-byte elements whose dtype text contains
 * `descr`; returns the payload and its element count, or NULL. */
static void *read_npy(const char *path, const char *descr, size_t want_elem, size_t *count)
{
    FILE *f = fopen(path, "rb");
    unsigned char pre[10];
    char *header;
    size_t hlen, bytes;
    long start, end;
    void *data;
    if (!f) {
        return NULL;
    }
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] != 1) {
        fclose(f);
        return NULL;
    }
    hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
    header = malloc(hlen + 1);
    if (!header || fread(header, 1, hlen, f) != hlen) {
        free(header);
        fclose(f);
        return NULL;
    }
    header[hlen] = '\0';
    if (!strstr(header, descr) || strstr(header, "'fortran_order': True")) {
        free(header);
        fclose(f);
        return NULL;
    }
    free(header);
    start = ftell(f);
    fseek(f, 0, SEEK_END);
    end = ftell(f);
    fseek(f, start, SEEK_SET);
    bytes = (size_t)(end - start);
    data = malloc(bytes ? bytes : 1);
    if (!data || fread(data, 1, bytes, f) != bytes) {
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *count = bytes / want_elem;
    return data;
}

typedef int (*run_fn)(const float *, float *);

static size_t correct(run_fn run, const float *images, const long long *labels, size_t n)
{
    float out[MNIST_K8_OUTPUT_SIZE];
    size_t i, c, hits = 0;
    for (i = 0; i < n; ++i) {
        size_t best = 0;
        if (run(images + i * MNIST_K8_INPUT_SIZE, out) != 0) {
            return 0;
        }
        for (c = 1; c < MNIST_K8_OUTPUT_SIZE; ++c) {
            if (out[c] > out[best]) {
                best = c;
            }
        }
        hits += (long long)best == labels[i];
    }
    return hits;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : DIGITS_DIR;
    char path[4096];
    size_t n_img = 0, n_lab = 0, n, k2, k8;
    float *images;
    long long *labels;
    snprintf(path, sizeof path, "%s/images.npy", dir);
    images = read_npy(path, "<f4", sizeof(float), &n_img);
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    labels = read_npy(path, "<i8", sizeof(long long), &n_lab);
    if (!images || !labels) {
        fprintf(stderr, "cannot read images.npy (float32) and labels.npy (int64) in %s\n", dir);
        return 1;
    }
    n = n_img / MNIST_K8_INPUT_SIZE;
    if (n != n_lab || n == 0) {
        fprintf(stderr, "%lu images but %lu labels\n", (unsigned long)n, (unsigned long)n_lab);
        return 1;
    }
    k2 = correct(mnist_k2_run, images, labels, n);
    k8 = correct(mnist_k8_run, images, labels, n);
    printf("K=2 top-1: %.2f %% (%lu/%lu), weights %d bytes\n", 100.0 * (double)k2 / (double)n,
           (unsigned long)k2, (unsigned long)n, MNIST_K2_WEIGHT_BYTES);
    printf("K=8 top-1: %.2f %% (%lu/%lu), weights %d bytes\n", 100.0 * (double)k8 / (double)n,
           (unsigned long)k8, (unsigned long)n, MNIST_K8_WEIGHT_BYTES);
#ifdef STRATA_MLIR
    {
        float a[MNIST_K8_OUTPUT_SIZE], b[MNIST_K8_MLIR_OUTPUT_SIZE];
        size_t i, same = 0, hits = correct(mnist_k8_mlir_run, images, labels, n);
        for (i = 0; i < n; ++i) {
            const float *x = images + i * MNIST_K8_INPUT_SIZE;
            if (mnist_k8_run(x, a) != 0 || mnist_k8_mlir_run(x, b) != 0) {
                return 1;
            }
            same += memcmp(a, b, sizeof a) == 0;
        }
        printf("MLIR K=8 top-1: %.2f %% (%lu/%lu), logits bit-identical to C: %lu/%lu\n",
               100.0 * (double)hits / (double)n, (unsigned long)hits, (unsigned long)n,
               (unsigned long)same, (unsigned long)n);
    }
#endif
    free(images);
    free(labels);
    return 0;
}
