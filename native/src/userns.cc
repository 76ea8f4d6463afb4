#include "userns.h"
#include "errors.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/capability.h>

int enr_write_file(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = enr_write_all(fd, data, enr_strlen(data)) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

static void map_line(char *buf, size_t cap, unsigned long inner, unsigned long outer) {
  char num[24];
  buf[0] = '\0';
  enr_utoa(inner, num, sizeof num); enr_strlcat(buf, num, cap); enr_strlcat(buf, " ", cap);
  enr_utoa(outer, num, sizeof num); enr_strlcat(buf, num, cap); enr_strlcat(buf, " 1\n", cap);
}

void enr_userns_create(int fd, uid_t outer_uid, gid_t outer_gid, uid_t inner_uid, gid_t inner_gid) {
  char line[64];
  int rc;
  if (unshare(CLONE_NEWUSER) < 0) enr_fail(fd, ENR_STEP_USERNS, errno, nullptr);
  if ((rc = enr_write_file("/proc/self/setgroups", "deny")) < 0) enr_fail(fd, ENR_STEP_SETGROUPS, -rc, "/proc/self/setgroups");
  map_line(line, sizeof line, inner_gid, outer_gid);
  if ((rc = enr_write_file("/proc/self/gid_map", line)) < 0) enr_fail(fd, ENR_STEP_GIDMAP, -rc, "/proc/self/gid_map");
  map_line(line, sizeof line, inner_uid, outer_uid);
  if ((rc = enr_write_file("/proc/self/uid_map", line)) < 0) enr_fail(fd, ENR_STEP_UIDMAP, -rc, "/proc/self/uid_map");
}

static int caps_get(struct __user_cap_data_struct data[2]) {
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  return syscall(SYS_capget, &hdr, data) < 0 ? -errno : 0;
}

static int caps_set(struct __user_cap_data_struct data[2]) {
  struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
  return syscall(SYS_capset, &hdr, data) < 0 ? -errno : 0;
}

int enr_caps_raise_ambient(unsigned last_cap) {
  struct __user_cap_data_struct data[2];
  int rc;
  if ((rc = caps_get(data)) < 0) return rc;
  data[0].inheritable = data[0].permitted;
  data[1].inheritable = data[1].permitted;
  if ((rc = caps_set(data)) < 0) return rc;
  for (unsigned c = 0; c <= last_cap && c < 64; c++) {
    uint32_t word = c < 32 ? data[0].permitted : data[1].permitted;
    if ((word & (1u << (c % 32))) == 0) continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0) {
      // enroot: "kernel lacks support for ambient capabilities, consider using --remap-root instead"
      return -errno;
    }
  }
  return 0;
}

int enr_caps_drop_all(unsigned last_cap) {
  for (unsigned c = 0; c <= last_cap && c < 64; c++) {
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) return -errno;
  }
  (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  return caps_set(data);
}
