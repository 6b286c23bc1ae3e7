/* The one accounting allocator (as redis' zmalloc): every long-lived buffer of
 * the library goes through it so that /health and the tests can say how many
 * bytes are in use. Thread-safe. Returned memory is 64-byte aligned. */
#ifndef SAM_CORE_ALLOC_H
#define SAM_CORE_ALLOC_H

#include <stddef.h>

void *sam_malloc(size_t n);            /* NULL on failure or n == 0 */
void *sam_calloc(size_t count, size_t size);
void *sam_realloc(void *p, size_t n);
void sam_free(void *p);                 /* NULL is fine */
char *sam_strdup(const char *s);
size_t sam_alloc_size(const void *p);  /* usable bytes of a live block; 0 for NULL */

/* Bytes of [p, p + n) whose pages are resident now (mincore): buffers that
 * are reserved but never touched cost address space, not RAM. 0 for NULL. */
size_t sam_mem_resident(const void *p, size_t n);

/* Account memory that was obtained elsewhere (mmap, FFmpeg, ...). */
void sam_mem_account(long long delta_bytes);

#endif
