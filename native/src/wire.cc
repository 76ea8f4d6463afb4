#include "wire.h"
#include <string.h>

int enr_next(struct enr_reader *r, struct enr_rec *out) {
  if (r->p == r->end) return 0;
  if (r->end - r->p < 8) return -1;
  uint32_t tag, len;
  memcpy(&tag, r->p, 4);
  memcpy(&len, r->p + 4, 4);
  size_t padded = ((size_t)len + 3) & ~(size_t)3;
  if ((size_t)(r->end - r->p - 8) < padded) return -1;
  out->tag = tag; out->len = len; out->data = r->p + 8;
  r->p += 8 + padded;
  return 1;
}

uint32_t enr_u32(const struct enr_rec *rec) {
  uint32_t v = 0;
  if (rec->len >= 4) memcpy(&v, rec->data, 4);
  return v;
}

const char *enr_str(const struct enr_rec *rec) {
  if (rec->len == 0 || rec->data[rec->len - 1] != '\0') return nullptr;
  return rec->data;
}

int enr_parse_mount(const struct enr_rec *rec, struct enr_mount *m) {
  const size_t hdr = 4 * (4 + ENR_MOUNT_MAXPROP);
  if (rec->len < hdr) return -1;
  uint32_t w[4 + ENR_MOUNT_MAXPROP];
  memcpy(w, rec->data, hdr);
  m->flags = w[0]; m->nprop = w[1];
  if (m->nprop > ENR_MOUNT_MAXPROP) return -1;
  for (int i = 0; i < ENR_MOUNT_MAXPROP; i++) m->prop[i] = w[2 + i];
  m->create = w[2 + ENR_MOUNT_MAXPROP]; m->bits = w[3 + ENR_MOUNT_MAXPROP];
  const char *p = rec->data + hdr, *end = rec->data + rec->len;
  const char **fields[5] = { &m->source, &m->target, &m->fstype, &m->data, &m->origin };
  for (int i = 0; i < 5; i++) {
    const char *nul = static_cast<const char *>(memchr(p, '\0', (size_t)(end - p)));
    if (nul == nullptr) return -1;
    *fields[i] = p;
    p = nul + 1;
  }
  return 0;
}
