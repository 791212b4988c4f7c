/* Prints the prefix string stored in libhello.so (patched at install time). */
#include <stdio.h>

const char *hello_prefix(void);

int main(void) {
    printf("prefix=%s\n", hello_prefix());
    return 0;
}
