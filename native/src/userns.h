// User namespace creation and the capability sequence (enroot's bin/common.h, enroot-nsenter).
#pragma once
#include <sys/types.h>

// unshare(CLONE_NEWUSER), "deny" to setgroups, then one-id gid_map and uid_map. Reports and exits on failure.
void enr_userns_create(int report_fd, uid_t outer_uid, gid_t outer_gid, uid_t inner_uid, gid_t inner_gid);
// Copy permitted to inheritable and raise every capability as ambient, so a non-root mapped uid keeps
// its capabilities across execve (enroot-nsenter). Returns 0 or -errno.
int enr_caps_raise_ambient(unsigned last_cap);
// Drop bounding, ambient, effective, permitted and inheritable (enroot-switchroot for euid != 0).
int enr_caps_drop_all(unsigned last_cap);
// Write a small string to a file (open O_WRONLY). Returns 0 or -errno.
int enr_write_file(const char *path, const char *data);
