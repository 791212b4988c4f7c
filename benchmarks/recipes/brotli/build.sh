#!/bin/bash
set -euxo pipefail
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include" "$PREFIX/bin" objs
printf '#define PORTPACK_PREFIX "%s"\n' "$PREFIX" > prefix.h
gcc -O2 -fPIC -c prefix.c -o objs/prefix.o
for part in common dec enc; do
    mkdir -p "objs/$part"
    for src in c/$part/*.c; do
        gcc -O2 -fPIC -Ic/include -c "$src" -o "objs/$part/$(basename "$src" .c).o"
    done
done
rpath="-Wl,-rpath,$PREFIX/lib"
gcc -shared -Wl,-soname,libbrotlicommon.so.1 -o "$PREFIX/lib/libbrotlicommon.so.1.2.1" \
    objs/common/*.o objs/prefix.o
gcc -shared -Wl,-soname,libbrotlidec.so.1 -o "$PREFIX/lib/libbrotlidec.so.1.2.1" \
    objs/dec/*.o objs/prefix.o -L"$PREFIX/lib" -l:libbrotlicommon.so.1.2.1 "$rpath"
gcc -shared -Wl,-soname,libbrotlienc.so.1 -o "$PREFIX/lib/libbrotlienc.so.1.2.1" \
    objs/enc/*.o objs/prefix.o -L"$PREFIX/lib" -l:libbrotlicommon.so.1.2.1 -lm "$rpath"
for lib in common dec enc; do
    ln -s "libbrotli$lib.so.1.2.1" "$PREFIX/lib/libbrotli$lib.so.1"
    ln -s "libbrotli$lib.so.1" "$PREFIX/lib/libbrotli$lib.so"
    ar rcs "$PREFIX/lib/libbrotli$lib.a" objs/$lib/*.o objs/prefix.o
    cat > "$PREFIX/lib/pkgconfig/libbrotli$lib.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: libbrotli$lib
Description: Brotli $lib library
Version: 1.2.1
Libs: -L\${libdir} -lbrotli$lib
Cflags: -I\${includedir}
PC
done
cp -r c/include/brotli "$PREFIX/include/"
gcc -O2 -Ic/include -o "$PREFIX/bin/brotli" c/tools/brotli.c objs/prefix.o -L"$PREFIX/lib" \
    -l:libbrotlienc.so.1.2.1 -l:libbrotlidec.so.1.2.1 -l:libbrotlicommon.so.1.2.1 -lm "$rpath"
