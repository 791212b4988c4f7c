// Compress a buffer with zstd's C API, decompress it again and compare.
// Prints the sizes; returns non-zero if anything fails or the round trip differs.
#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int main() {
    std::string input;
    for (unsigned i = 0; i < 2000; ++i) {
        input += "line " + std::to_string(i) + ": portpack packs a conda environment, hash " +
                 std::to_string(i * 2654435761u % 1000003u) + "\n";
    }

    std::vector<char> compressed(ZSTD_compressBound(input.size()));
    const size_t packed =
        ZSTD_compress(compressed.data(), compressed.size(), input.data(), input.size(), 19);
    if (ZSTD_isError(packed)) {
        std::fprintf(stderr, "ZSTD_compress failed: %s\n", ZSTD_getErrorName(packed));
        return 1;
    }

    const unsigned long long content = ZSTD_getFrameContentSize(compressed.data(), packed);
    if (content != input.size()) {
        std::fprintf(stderr, "frame says %llu bytes, expected %zu\n", content, input.size());
        return 1;
    }
    std::vector<char> restored(content);
    const size_t unpacked =
        ZSTD_decompress(restored.data(), restored.size(), compressed.data(), packed);
    if (ZSTD_isError(unpacked)) {
        std::fprintf(stderr, "ZSTD_decompress failed: %s\n", ZSTD_getErrorName(unpacked));
        return 1;
    }
    if (unpacked != input.size() || std::memcmp(restored.data(), input.data(), unpacked) != 0) {
        std::fprintf(stderr, "round trip mismatch: %zu bytes back, expected %zu\n", unpacked,
                     input.size());
        return 1;
    }

    std::printf("zstd library %s (headers %s)\n", ZSTD_versionString(), ZSTD_VERSION_STRING);
    std::printf("original:     %zu bytes\n", input.size());
    std::printf("compressed:   %zu bytes (%.1fx)\n", packed,
                static_cast<double>(input.size()) / static_cast<double>(packed));
    std::printf("decompressed: %zu bytes, identical\n", unpacked);
    return 0;
}
