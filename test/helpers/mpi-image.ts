// An MPI test image built from the host's own files: no registry, no network, no Debian image.
//
// The image holds /app/allreduce (MPI_Init, MPI_Allreduce of the ranks, one line per rank, MPI_Finalize)
// compiled here with the host's mpicc (Open MPI over the external PMIx that Slurm's mpi/pmix plugin
// also uses), the dynamic loader and every shared library it needs, the Open MPI and PMIx components
// they dlopen at MPI_Init, their configuration and help texts, and busybox for sh. Libraries and
// components are copied at their host paths (merged /usr: /lib, /lib64, /bin, /sbin are links as on the
// host), and the image gets its own /etc/ld.so.cache from `ldconfig -r`, so the loader finds everything
// the way it does on the host.
//
// API:
//   mpiImageUnavailableReason()  -> why the image cannot be built here (undefined when it can)
//   buildMpiImage(dir)           -> path of <dir>/mpi.sqsh (built once per process, then copied)
//   MPI_APP, PMI1_APP            -> the MPI program's and the PMI-1 script's paths inside the image
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { tmpdir } from 'node:os'

export const MPI_APP = '/app/allreduce'
/** A PMI-1 client in busybox sh (Slurm's mpi/pmi2 also speaks PMI-1 on PMI_FD): put, barrier, get across ranks. */
export const PMI1_APP = '/app/pmi1.sh'

// Open MPI as Debian builds it talks PMIx only (no PMI-1/2 component), so --mpi=pmi2 is exercised with this:
// each rank puts its host name, waits in the barrier (a collective over all nodes, through slurmstepd),
// then reads the next rank's entry. The requests and replies go to stderr, the result to stdout.
const PMI1_SOURCE = `fd=$PMI_FD
say () { printf '%s\\n' "$1" >&$fd; read -r reply <&$fd; echo "$reply"; }
say 'cmd=init pmi_version=1 pmi_subversion=1' >&2
kvs=$(say 'cmd=get_my_kvsname' | sed 's/.*kvsname=\\([^ ]*\\).*/\\1/')
say "cmd=put kvsname=$kvs key=host$PMI_RANK value=$(hostname)" >&2
say 'cmd=barrier_in' >&2
next=$(( (PMI_RANK + 1) % PMI_SIZE ))
echo "rank $PMI_RANK of $PMI_SIZE on $(hostname) next: $(say "cmd=get kvsname=$kvs key=host$next")"
say 'cmd=finalize' >&2
`

const SOURCE = `#include <mpi.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank = -1, size = -1, sum = -1;
    char host[256] = "";

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    gethostname(host, sizeof(host) - 1);
    printf("rank %d of %d sum %d on %s\\n", rank, size, sum, host);
    fflush(stdout);
    MPI_Finalize();
    return 0;
}
`

// Debian's Open MPI (4.1, package openmpi-bin/libopenmpi3) and PMIx (libpmix2) layout.
const OMPI_COMPONENTS = '/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3'
const PMIX_COMPONENTS = '/usr/lib/x86_64-linux-gnu/pmix2/lib/pmix'
const DATA_DIRS = ['/etc/openmpi', '/usr/share/openmpi', '/usr/lib/x86_64-linux-gnu/pmix2/share/pmix']
const BUSYBOX = '/bin/busybox'
const APPLETS = ['sh', 'hostname', 'cat', 'env', 'ls', 'echo', 'true', 'id', 'sed']

// Open MPI scans its component directory and dlopens every file at MPI_Init. Components for fabrics this
// test does not use (UCX, libfabric, PSM, verbs) and OpenSHMEM would pull in tens of MB of libraries:
// leave out every component that needs one of these (Open MPI simply does not see them); TCP, shared
// memory and self remain, which is all three "nodes" on one machine need.
const UNWANTED = /^(libucp|libucs|libuct|libucm|libfabric|libibverbs|librdmacm|libefa|libpsm|libpsm2|libpsm_infinipath|libinfinipath|liboshmem|libmca_common_(ucx|ofi|verbs))\./

const have = (cmd: string): boolean => { try { execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }); return true } catch { return false } }

/** Why the image cannot be built on this machine, or undefined. */
export function mpiImageUnavailableReason (): string | undefined {
  for (const cmd of ['mpicc', 'mksquashfs', 'ldd', 'ldconfig']) if (!have(cmd)) return `${cmd} is not installed (scripts/setup.sh installs it)`
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (busybox-static)`
  if (!existsSync(join(OMPI_COMPONENTS, 'mca_pmix_ext3x.so'))) return `Open MPI's PMIx component ${OMPI_COMPONENTS}/mca_pmix_ext3x.so is missing (openmpi-bin)`
  if (!existsSync('/usr/lib/x86_64-linux-gnu/libpmix.so')) return 'libpmix.so is missing (libpmix-dev; Slurm\'s mpi/pmix_v4 dlopens it)'
  return undefined
}

/** The libraries ldd reports for an ELF file (already the transitive closure), loader included. */
function lddPaths (file: string): string[] {
  let out: string
  try { out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }) } catch { return [] } // static binaries
  const paths: string[] = []
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line)
    if (m?.[1] !== undefined) paths.push(m[1])
    else if (/=>\s+not found/.test(line)) throw new Error(`${file}: ${line.trim()}`)
  }
  return paths
}

/** Copies a host path into root at the same path, keeping symlinks as links and following them. */
function copyHostPath (root: string, hostPath: string, seen: Set<string>): void {
  // Directories are canonicalised (merged /usr: /lib/x86_64-linux-gnu is /usr/lib/x86_64-linux-gnu), the
  // file itself is not, so SONAME links stay links.
  const p = join(realpathSync(dirname(hostPath)), basename(hostPath))
  if (seen.has(p)) return
  seen.add(p)
  const dest = join(root, p)
  mkdirSync(dirname(dest), { recursive: true })
  const st = lstatSync(p)
  if (st.isSymbolicLink()) {
    const target = readlinkSync(p)
    if (!existsSync(dest)) symlinkSync(target, dest)
    copyHostPath(root, resolve(dirname(p), target), seen)
  } else if (st.isDirectory()) {
    mkdirSync(dest, { recursive: true })
    for (const n of readdirSync(p)) copyHostPath(root, join(p, n), seen)
  } else if (st.isFile()) {
    copyFileSync(p, dest)
    chmodSync(dest, st.mode & 0o7777)
  }
}

let built: string | undefined

function buildOnce (): string {
  if (built !== undefined && existsSync(built)) return built
  const work = mkdtempSync(join(process.env.ENROOT_TEST_TMP ?? tmpdir(), 'enroot-mpi-image-'))
  const root = join(work, 'rootfs')
  try {
    for (const d of ['app', 'etc', 'tmp', 'proc', 'dev', 'sys', 'root', 'home', 'run', 'var/tmp', 'usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64']) mkdirSync(join(root, d), { recursive: true })
    chmodSync(join(root, 'tmp'), 0o1777)
    // merged /usr, as on the host: the ELF interpreter is /lib64/ld-linux-x86-64.so.2
    for (const l of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${l}`, join(root, l))

    writeFileSync(join(work, 'allreduce.c'), SOURCE)
    writeFileSync(join(root, 'app', 'pmi1.sh'), PMI1_SOURCE, { mode: 0o755 })
    const app = join(root, 'app', 'allreduce')
    execFileSync('mpicc', ['-O2', '-o', app, join(work, 'allreduce.c')], { stdio: ['ignore', 'ignore', 'pipe'] })

    const seen = new Set<string>()
    const components = readdirSync(OMPI_COMPONENTS).filter(n => n.endsWith('.so')).map(n => join(OMPI_COMPONENTS, n))
      .filter(c => !lddPaths(c).some(l => UNWANTED.test(basename(l))))
    const pmixComponents = existsSync(PMIX_COMPONENTS) ? readdirSync(PMIX_COMPONENTS).filter(n => n.endsWith('.so')).map(n => join(PMIX_COMPONENTS, n)) : []
    const elves = [...components, ...pmixComponents]
    const libs = new Set<string>([...lddPaths(app), ...elves.flatMap(lddPaths)])
    for (const f of [...elves, ...libs]) copyHostPath(root, f, seen)
    for (const d of DATA_DIRS) if (existsSync(d)) copyHostPath(root, d, seen)

    copyFileSync(BUSYBOX, join(root, 'usr', 'bin', 'busybox'))
    chmodSync(join(root, 'usr', 'bin', 'busybox'), 0o755)
    for (const a of APPLETS) symlinkSync('busybox', join(root, 'usr', 'bin', a))
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n')
    writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\n')
    // PATH for the container (the job's PATH is the host's); the image's environment file is read at start.
    writeFileSync(join(root, 'etc', 'environment'), 'PATH=/usr/bin:/bin:/app\n')
    // The image's own linker cache, covering Open MPI's private directory (libmpi's RUNPATH) and PMIx's.
    writeFileSync(join(root, 'etc', 'ld.so.conf'), ['/usr/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu/openmpi/lib', '/usr/lib/x86_64-linux-gnu/pmix2/lib', ''].join('\n'))
    execFileSync('ldconfig', ['-r', root], { stdio: ['ignore', 'ignore', 'pipe'] })

    const image = join(work, 'mpi.sqsh')
    execFileSync('mksquashfs', [root, image, '-quiet', '-noappend', '-all-root', '-comp', 'gzip'], { stdio: ['ignore', 'ignore', 'pipe'] })
    chmodSync(work, 0o755)
    chmodSync(image, 0o644)
    built = image
    // the cache lives for this process only
    process.once('exit', () => { rmSync(work, { recursive: true, force: true }) })
    return image
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

/** Builds the MPI squashfs (once per process) and copies it to <dir>/mpi.sqsh, readable by everyone. */
export function buildMpiImage (dir: string): string {
  const src = buildOnce()
  const dest = join(dir, 'mpi.sqsh')
  copyFileSync(src, dest)
  chmodSync(dest, 0o644)
  return dest
}
