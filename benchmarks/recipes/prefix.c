/* Compiled into every benchmark library: embeds the build prefix as a C string,
 * so rattler-build records the file with a binary prefix placeholder (as with
 * conda-forge's openssl, ncurses or tk). */
#include "prefix.h"

const char *portpack_bench_install_prefix(void) { return PORTPACK_PREFIX; }
const char *portpack_bench_data_dir(void) { return PORTPACK_PREFIX "/share/portpack-bench"; }
