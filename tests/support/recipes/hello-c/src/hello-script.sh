#!/bin/sh
# Plain sh script without any prefix: runs bin/hello next to it.
exec "$(dirname "$0")/hello" "$@"
