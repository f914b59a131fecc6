/*
 * authspec.c - the client side of a login: the "METHOD key=value ..."
 * text of -a and connect.auth, and the fields of the auth request it
 * becomes.  Used by the blocking client (the command line) and by the
 * links between servers.
 */
#include "auth.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[DKV_AUTH_NMETHODS] = {"root", "_test", "password"};

int dkv_auth_method_parse(const uint8_t *name, size_t len)
{
	for (int i = 0; i < DKV_AUTH_NMETHODS; i++)
		if (strlen(method_names[i]) == len && !memcmp(method_names[i], name, len))
			return i;
	return DKV_AUTH_NONE;
}

const char *dkv_auth_method_name(int method)
{
	return method >= 0 && method < DKV_AUTH_NMETHODS ? method_names[method] : "none";
}

static void wipe_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void dkv_auth_spec_release(struct dkv_auth_spec *sp)
{
	free(sp->name);
	wipe_free(sp->password);
	free(sp->prompt);
	memset(sp, 0, sizeof *sp);
	sp->method = DKV_AUTH_NONE;
}

static int spec_word(struct dkv_auth_spec *sp, const char *w, size_t len, char *err,
		     size_t errlen)
{
	const char *eq = memchr(w, '=', len);
	if (!eq || eq == w) {
		snprintf(err, errlen, "auth: '%.*s' is not key=value", (int)len, w);
		return -EINVAL;
	}
	size_t klen = (size_t)(eq - w);
	bool ask = w[klen - 1] == '?';
	if (ask)
		klen--;
	char *val = strndup(eq + 1, len - (size_t)(eq + 1 - w));
	if (!val)
		return -ENOMEM;
	char **slot = NULL;
	if (klen == 4 && !memcmp(w, "name", 4) && !ask)
		slot = &sp->name;
	else if (klen == 8 && !memcmp(w, "password", 8) && sp->method == DKV_AUTH_PASSWORD)
		slot = ask ? &sp->prompt : &sp->password;
	if (!slot) {
		snprintf(err, errlen, "auth: method %s takes no '%.*s%s' (it takes %s)",
			 method_names[sp->method], (int)klen, w, ask ? "?" : "",
			 sp->method == DKV_AUTH_PASSWORD ? "name=, password= or password?=PROMPT"
			 : sp->method == DKV_AUTH_TEST	 ? "name="
							 : "nothing");
		wipe_free(val);
		return -EINVAL;
	}
	if (slot == &sp->password)
		wipe_free(*slot);
	else
		free(*slot);
	*slot = val;
	return 0;
}

int dkv_auth_spec_parse(struct dkv_auth_spec *sp, const char *text, char *err, size_t errlen)
{
	memset(sp, 0, sizeof *sp);
	sp->method = DKV_AUTH_NONE;
	const char *p = text;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = strcspn(p, " \t");
	sp->method = dkv_auth_method_parse((const uint8_t *)p, n);
	if (sp->method == DKV_AUTH_NONE) {
		snprintf(err, errlen, "auth: unknown method '%.*s' (known: root, _test, password)",
			 (int)(n > 64 ? 64 : n), p);
		return -EINVAL;
	}
	for (p += n;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		n = strcspn(p, " \t");
		int rc = spec_word(sp, p, n, err, errlen);
		if (rc) {
			dkv_auth_spec_release(sp);
			return rc;
		}
		p += n;
	}
	if (sp->method != DKV_AUTH_ROOT && !sp->name) {
		snprintf(err, errlen, "auth: method %s needs name=USER", method_names[sp->method]);
		dkv_auth_spec_release(sp);
		return -EINVAL;
	}
	return 0;
}

int dkv_auth_seal(const uint8_t *pubkey, const char *pw, size_t len, struct dkv_buf *out)
{
	if (sodium_init() < 0)
		return -EINVAL;
	uint8_t *box = malloc(crypto_box_SEALBYTES + len);
	if (!box)
		return -ENOMEM;
	crypto_box_seal(box, (const uint8_t *)pw, len, pubkey);
	dkv_buf_append(out, box, crypto_box_SEALBYTES + len);
	free(box);
	return 0;
}

uint32_t dkv_auth_login_fields(const struct dkv_auth_spec *sp, const uint8_t *pubkey,
			       struct dkv_buf *out)
{
	dkv_mp_cstr(out, "typ");
	dkv_mp_cstr(out, method_names[sp->method]);
	dkv_mp_cstr(out, "chroot");
	dkv_mp_array(out, 0);
	dkv_mp_cstr(out, "ident");
	dkv_mp_cstr(out, sp->name ? sp->name : "*");
	dkv_mp_cstr(out, "data");
	if (sp->method == DKV_AUTH_PASSWORD && pubkey && sp->password) {
		struct dkv_buf sealed = {0};
		dkv_mp_map(out, 1);
		dkv_mp_cstr(out, "password");
		dkv_auth_seal(pubkey, sp->password, strlen(sp->password), &sealed);
		dkv_mp_bin(out, sealed.data, sealed.len);
		dkv_buf_release(&sealed);
	} else {
		dkv_mp_map(out, 0);
	}
	return 4;
}
