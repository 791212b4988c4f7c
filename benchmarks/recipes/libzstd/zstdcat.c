/* zstdcat-mini: decompress standard input to standard output with libzstd. */
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

extern const char *portpack_bench_install_prefix(void);

int main(int argc, char **argv) {
    if (argc > 1) {
        printf("%s\n", portpack_bench_install_prefix());
        return 0;
    }
    size_t in_size = ZSTD_DStreamInSize(), out_size = ZSTD_DStreamOutSize();
    char *in = malloc(in_size), *out = malloc(out_size);
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    size_t got;
    while ((got = fread(in, 1, in_size, stdin)) > 0) {
        ZSTD_inBuffer input = {in, got, 0};
        while (input.pos < input.size) {
            ZSTD_outBuffer output = {out, out_size, 0};
            size_t ret = ZSTD_decompressStream(dctx, &output, &input);
            if (ZSTD_isError(ret)) {
                fprintf(stderr, "%s\n", ZSTD_getErrorName(ret));
                return 1;
            }
            fwrite(out, 1, output.pos, stdout);
        }
    }
    ZSTD_freeDCtx(dctx);
    return 0;
}
