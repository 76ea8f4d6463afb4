#include "nofile.h"
#include <sys/resource.h>

void enr_restore_nofile(unsigned soft) {
  struct rlimit rl;
  if (soft == 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0 || (rlim_t)soft > rl.rlim_cur) return;
  rl.rlim_cur = soft;
  (void)setrlimit(RLIMIT_NOFILE, &rl);
}
