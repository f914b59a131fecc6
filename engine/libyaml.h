/*
 * libyaml.h - reach libyaml's <yaml.h> from yaml.c.
 *
 * The engine directory is on the include path and has its own yaml.h, so
 * a plain #include <yaml.h> finds ours.  #include_next continues the
 * search after this directory and so reaches the system's libyaml.
 * Only yaml.c includes this file.
 */
#ifndef DKV_LIBYAML_H
#define DKV_LIBYAML_H

#include_next <yaml.h>

#endif
