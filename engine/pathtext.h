/*
 * pathtext.h - the colon notation: one path element as one word of text.
 *
 * Used for the command line's path arguments (one argument per element)
 * and for directory names in the mounted tree.  The full grammar is in
 * doc/cli.md; in short:
 *
 *   text     a string (the text as it is), unless it starts with ':'
 *   :e       the empty string
 *   ::text   a string that starts with a colon
 *   :=text   the string "text" whatever it looks like (:=_  :=.meta)
 *   :t :f    true, false
 *   :n       None
 *   :123     an integer (any size; :-5, :0x1f)
 *   :1.5     a float (:1e3, :inf, :-inf, :nan)
 *   :vtext   a byte string given as printable ASCII
 *   :yABCD   a byte string given in hex
 *   :uABCD   a string given as the hex of its UTF-8 bytes
 *   :(a,b)   a tuple; its items in this same notation, comma-separated
 *
 * Formatting picks the plain form whenever it parses back to the same
 * element, except that it never writes a control character (U+0000-U+001F,
 * U+007F-U+009F) or U+2028/U+2029: a string holding one is written :uHEX,
 * so a formatted element never spans lines or hides invisible characters
 * (parsing still takes them as they are).  DKV_PT_FS additionally avoids
 * what a file name cannot hold or what would clash in a directory
 * listing: '/', NUL, a leading '.', the names "_" and ".meta".
 */
#ifndef DKV_PATHTEXT_H
#define DKV_PATHTEXT_H

#include "mp.h"

#define DKV_PT_FS 1u /* text must be a safe file name */

/* Append the text form of the path element encoded at elem[0..len) to
 * out (no NUL).  -EINVAL when the bytes are not one valid path element
 * (maps, non-path ext types, nesting deeper than DKV_MP_MAX_DEPTH). */
int dkv_pathtext_format(struct dkv_buf *out, const uint8_t *elem, size_t len, unsigned flags);

/* Parse text[0..len) and append the canonical msgpack encoding of the
 * element to out.  -EINVAL when the text is not valid notation (out is
 * unchanged). */
int dkv_pathtext_parse(struct dkv_buf *out, const char *text, size_t len, unsigned flags);

/*
 * A whole path as one word, as YAML's !P tag writes it: the elements in
 * the notation above (without DKV_PT_FS) joined by '.'; the root, which
 * has no elements, is ":".  Inside an element '.' is written ":." and a
 * ':' that is followed by ':' or '.' or ends the element is written "::";
 * every other character stands for itself.  So common paths look like the
 * original DistKV's ("a.b.:5", and "a:.b" for the one element "a.b").
 */

/* Append the text of the path whose element encodings are elems[0..len)
 * (the payload of a DKV_EXT_PATH value).  -EINVAL when they are not a
 * sequence of valid elements (out is unchanged). */
int dkv_pathtext_format_path(struct dkv_buf *out, const uint8_t *elems, size_t len);

/* Parse the text of a whole path and append its element encodings (the
 * payload for dkv_path_encode) to out.  -E2BIG when it has more than
 * DKV_PATH_MAX_ELEMS elements.  -EINVAL when an element is not valid
 * notation (an empty one included: "a..b"); then, if bad is not NULL,
 * *bad and *badlen give that element's text as it stands in text, escapes
 * and all.  On failure out is unchanged. */
int dkv_pathtext_parse_path(struct dkv_buf *out, const char *text, size_t len, const char **bad,
			    size_t *badlen);

#endif
