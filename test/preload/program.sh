#!/bin/sh
# Runs one of our own test programs (built by meson) with its arguments.
exec "$@"
