#!/bin/bash
set -euxo pipefail
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include" "$PREFIX/bin"
printf '#define PORTPACK_PREFIX "%s"\n' "$PREFIX" > prefix.h
gcc -O2 -fPIC -c zstd/zstd.c -o zstd.o
gcc -O2 -fPIC -c prefix.c -o prefix.o
gcc -shared -Wl,-soname,libzstd.so.1 -o "$PREFIX/lib/libzstd.so.1.5.7" zstd.o prefix.o -lpthread
ln -s libzstd.so.1.5.7 "$PREFIX/lib/libzstd.so.1"
ln -s libzstd.so.1 "$PREFIX/lib/libzstd.so"
ar rcs "$PREFIX/lib/libzstd.a" zstd.o prefix.o
cp zstd/zstd.h zstd/zdict.h zstd/zstd_errors.h "$PREFIX/include/"
gcc -O2 -Izstd -o "$PREFIX/bin/zstdcat-mini" zstdcat.c -L"$PREFIX/lib" -lzstd -Wl,-rpath,"$PREFIX/lib"
cat > "$PREFIX/lib/pkgconfig/libzstd.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: zstd
Description: fast lossless compression algorithm library
Version: 1.5.7
Libs: -L\${libdir} -lzstd
Cflags: -I\${includedir}
PC
