/* test_hashtab.c - dkv_hashtab_grow: doubling a chained table keeps every
 * node, each in the bucket its hash names, and frees the old array. */
#include "hashtab.h"
#include "mp.h"
#include "test.h"

#include <stdint.h>

struct node {
	uint64_t key;
	struct node *hnext;
};

static size_t hash(const void *n)
{
	uint64_t k = ((const struct node *)n)->key;
	return (size_t)(k * 0x9e3779b97f4a7c15u >> 17);
}

TEST(grow_keeps_every_node)
{
	size_t mask = 7;
	struct node **table = dkv_xcalloc(mask + 1, sizeof *table);
	static struct node nodes[1000];
	for (uint64_t i = 0; i < 1000; i++) {
		struct node *n = &nodes[i];
		n->key = i * 31 + 7;
		size_t b = hash(n) & mask;
		n->hnext = table[b];
		table[b] = n;
		if (i == 15 || i == 200 || i == 999)
			dkv_hashtab_grow(&table, &mask, offsetof(struct node, hnext), hash);
	}
	CHECK_EQ_INT(mask, 63);
	size_t seen = 0;
	bool placed = true;
	for (size_t b = 0; b <= mask; b++)
		for (struct node *n = table[b]; n; n = n->hnext) {
			seen++;
			placed &= (hash(n) & mask) == b;
		}
	CHECK_EQ_INT(seen, 1000);
	CHECK(placed);
	free(table);
}

TESTS(grow_keeps_every_node)
