/* Shared library whose only data is the install prefix baked in at build time. */
#include "hello_prefix.h"

const char *hello_prefix(void) { return HELLO_PREFIX; }
