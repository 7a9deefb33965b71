/*
 * frozen_index.c - the hash index of a frozen mapping (frozen.h): which
 * hash a key is placed by, how the slots are filled, and how keys are
 * told equal.
 *
 * Python's hashes are poor table positions for regular keys: an int
 * hashes to itself, so ids times 4096 or offsets aligned to 1 MiB share
 * their low bits, and `hash & (cap - 1)` sent 100,000 of them into a few
 * clusters (a lookup then walked thousands of slots, and freezing them
 * took seconds).  So a key's home slot is its hash run through a 64-bit
 * finalizer (murmur3's fmix64) with a seed, and the slots are filled by
 * Robin Hood insertion (a key takes the place of one nearer its home),
 * which keeps the longest displacement small.  The builder records that
 * longest displacement in the image, and a reader never probes past it:
 * a lookup, found or not, costs at most maxd + 1 probes.  When a key set
 * still displaces some key more than a bound (a hostile set made for one
 * seed), the index is built again with another seed, a few times: only
 * keys whose Python hashes are equal (which a dict cannot tell apart by
 * hash either) keep long probes.  Seeds are random per thread, so a key
 * set cannot be made in advance for the seed an image will get.
 *
 * Keys are placed and found by Python's hash and equality, except NaN
 * (a float, or a complex with a NaN part): Python hashes a NaN by its
 * object's address and finds it in a dict only by identity, and a frozen
 * mapping has no objects to be identical (each read makes a new float).
 * Here a NaN is its bits: hashed by them, and equal to a NaN with the
 * same bits, so a mapping frozen from {nan: v} finds v for nan, dict(m)
 * and m == source work, as they do for the dict itself.
 */
#include "interp/frozen.h"

#include "common/alloc.h"

#include <math.h>
#include <sys/random.h>
#include <time.h>

/* ---- hashing ------------------------------------------------------------ */

static uint64_t bits_of(double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	return u;
}

/* Whether obj is a float or complex with a NaN in it (*a, *b: its bits). */
static int nan_bits(PyObject *obj, uint64_t *a, uint64_t *b)
{
	if (PyFloat_Check(obj)) {
		double v = PyFloat_AS_DOUBLE(obj);
		*a = bits_of(v);
		*b = 0;
		return isnan(v);
	}
	if (PyComplex_Check(obj)) { /* its own parts: no __complex__ call */
		double re = PyComplex_RealAsDouble(obj), im = PyComplex_ImagAsDouble(obj);
		*a = bits_of(re);
		*b = bits_of(im);
		return isnan(re) || isnan(im);
	}
	return 0;
}

int isola__frozen_key_hash(PyObject *key, uint64_t *out)
{
	uint64_t a, b;
	if (nan_bits(key, &a, &b)) {
		*out = a ^ (b * 0x9e3779b97f4a7c15u);
		return 0;
	}
	Py_hash_t h = PyObject_Hash(key);
	if (h == -1 && PyErr_Occurred())
		return -1;
	*out = (uint64_t)h;
	return 0;
}

int isola__frozen_same(PyObject *a, PyObject *b)
{
	uint64_t a1, a2, b1, b2;
	if (a == b)
		return 1;
	if (nan_bits(a, &a1, &a2) || nan_bits(b, &b1, &b2)) {
		/* a NaN equals only a NaN of the same kind and bits */
		if (!nan_bits(b, &b1, &b2) || !nan_bits(a, &a1, &a2))
			return 0;
		return PyFloat_Check(a) == PyFloat_Check(b) && a1 == b1 && a2 == b2;
	}
	return PyObject_RichCompareBool(a, b, Py_EQ);
}

PyObject *isola__frozen_hashable(PyObject *obj)
{
	uint64_t a, b;
	if (PyTuple_CheckExact(obj)) { /* an item (key, value) */
		Py_ssize_t n = PyTuple_GET_SIZE(obj);
		PyObject *r = PyTuple_New(n);
		for (Py_ssize_t i = 0; r != NULL && i < n; i++) {
			PyObject *x = isola__frozen_hashable(PyTuple_GET_ITEM(obj, i));
			if (x == NULL)
				Py_CLEAR(r);
			else
				PyTuple_SET_ITEM(r, i, x);
		}
		return r;
	}
	if (nan_bits(obj, &a, &b))
		return Py_BuildValue("(sKK)", PyFloat_Check(obj) ? "nan" : "complex nan",
				     (unsigned long long)a, (unsigned long long)b);
	return Py_NewRef(obj);
}

/* ---- building ----------------------------------------------------------- */

/* A random 32-bit seed: xorshift64 per thread, seeded from the kernel
 * (or the clock) on a thread's first image. */
static uint32_t next_seed(void)
{
	static _Thread_local uint64_t state;
	if (state == 0) {
		if (getrandom(&state, sizeof(state), GRND_NONBLOCK) != (ssize_t)sizeof(state)) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&ts;
		}
		state |= 1;
	}
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return (uint32_t)(state >> 32);
}

/* The longest displacement a build accepts before it tries another seed:
 * Robin Hood at a load of at most 2/3 displaces random keys by far less
 * (a few slots, ~10 for a million keys). */
static uint32_t displacement_bound(uint32_t cap)
{
	uint32_t log2cap = 0;
	while ((1u << log2cap) < cap && log2cap < 31)
		log2cap++;
	return 16 + 2 * log2cap;
}

/* Fill owner[0..cap) (key indexes; EMPTY for none) by Robin Hood
 * insertion from homes; the longest displacement. */
#define EMPTY UINT32_MAX
static uint32_t robin_hood(uint32_t *owner, uint32_t cap, const uint32_t *home, uint32_t n)
{
	uint32_t mask = cap - 1, maxd = 0;
	memset(owner, 0xff, (size_t)cap * sizeof(*owner));
	for (uint32_t i = 0; i < n; i++) {
		uint32_t cur = i, d = 0, s = home[i];
		for (;;) {
			uint32_t o = owner[s];
			if (o == EMPTY) {
				owner[s] = cur;
				maxd = d > maxd ? d : maxd;
				break;
			}
			uint32_t od = (s - home[o]) & mask;
			if (od < d) { /* o is nearer its home: cur takes its place */
				owner[s] = cur;
				maxd = d > maxd ? d : maxd;
				cur = o;
				d = od;
			}
			s = (s + 1) & mask;
			d++;
		}
	}
	return maxd;
}

int isola__frozen_index_build(unsigned char *slots, uint32_t cap, const uint64_t *hashes,
			      const uint32_t *offsets, uint32_t n, uint32_t *seed_out,
			      uint32_t *maxd_out)
{
	assert(cap > n && (cap & (cap - 1)) == 0);
	uint32_t *home = isola__malloc((size_t)n * sizeof(*home) + 1);
	uint32_t *owner = isola__malloc((size_t)cap * sizeof(*owner));
	if (home == NULL || owner == NULL) {
		isola__free(home);
		isola__free(owner);
		return ISOLA_ENOMEM;
	}
	uint32_t bound = displacement_bound(cap), best_seed = 0, last_seed = 0, best = UINT32_MAX;
	for (int attempt = 0; attempt < 4 && best > bound; attempt++) {
		last_seed = next_seed();
		for (uint32_t i = 0; i < n; i++)
			home[i] = isola__frozen_home(hashes[i], last_seed, cap - 1);
		uint32_t maxd = robin_hood(owner, cap, home, n);
		if (maxd < best)
			best = maxd, best_seed = last_seed;
	}
	if (last_seed != best_seed) { /* equal hashes: the best of the seeds tried, again */
		for (uint32_t i = 0; i < n; i++)
			home[i] = isola__frozen_home(hashes[i], best_seed, cap - 1);
		robin_hood(owner, cap, home, n);
	}
	for (uint32_t s = 0; s < cap; s++) {
		uint32_t off = owner[s] == EMPTY ? 0 : offsets[owner[s]];
		memcpy(slots + 4 * (size_t)s, &off, 4);
	}
	*seed_out = best_seed;
	*maxd_out = best;
	isola__free(home);
	isola__free(owner);
	return 0;
}
