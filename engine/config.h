/*
 * config.h - configuration: built-in defaults, a YAML file, -C overrides.
 *
 * Keys are dotted names as in the original DistKV ("server.bind_default.port").
 * A YAML file's nested mappings are flattened into dotted keys; an
 * override "a.b=value" parses value as a YAML scalar (so "-C x=5" is the
 * integer 5).  Later settings win.  Values are kept as msgpack encodings.
 */
#ifndef DKV_CONFIG_H
#define DKV_CONFIG_H

#include "mp.h"

#include <stdbool.h>
#include <stdint.h>

struct dkv_config;

/* A configuration holding the built-in defaults (listed in doc/cli.md). */
struct dkv_config *dkv_config_new(void);
void dkv_config_free(struct dkv_config *c); /* accepts NULL */

/* Merge a YAML file.  -ENOENT/-EACCES/... or -EINVAL; err says why
 * ("cfg.yaml:3:5: mapping values are not allowed here"). */
int dkv_config_load_file(struct dkv_config *c, const char *path, char *err, size_t errlen);
/* Apply "key=value".  -EINVAL with a reason when there is no '='. */
int dkv_config_set(struct dkv_config *c, const char *assignment, char *err, size_t errlen);
/* Set a key to a msgpack value. */
void dkv_config_set_raw(struct dkv_config *c, const char *key, const uint8_t *mp, size_t len);

/* Lookups.  A missing key, or one of another type, gives dflt.
 * dkv_config_str's result lives as long as the configuration. */
const char *dkv_config_str(const struct dkv_config *c, const char *key, const char *dflt);
int64_t dkv_config_int(const struct dkv_config *c, const char *key, int64_t dflt);
double dkv_config_float(const struct dkv_config *c, const char *key, double dflt);
bool dkv_config_bool(const struct dkv_config *c, const char *key, bool dflt);
/* Raw access: false when missing. */
bool dkv_config_get(const struct dkv_config *c, const char *key, const uint8_t **mp, size_t *len);
/* The i-th setting (in no particular order), for keys that name data
 * (server.mount.users.UID): false when i is past the last. */
bool dkv_config_at(const struct dkv_config *c, size_t i, const char **key, const uint8_t **mp,
		   size_t *len);

#endif
