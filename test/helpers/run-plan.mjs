// Test driver, run as the test user (the product's runtime without the CLI): exits with the container's
// status, as `enroot start` does.
//   run-plan.mjs PLAN.json            run the ContainerPlan in the file
//   run-plan.mjs exec PID CMD...      join PID's namespaces and run CMD (enroot exec)
import { readFileSync } from 'node:fs'
if (process.argv[2] === undefined) process.exit(0)   // tap lists helpers as test files
const { runContainer, execInContainer } = await import(new URL('../../dist/runtime/engine.js', import.meta.url))
try {
  const r = process.argv[2] === 'exec'
    ? await execInContainer(Number(process.argv[3]), process.argv.slice(4))
    : await runContainer(JSON.parse(readFileSync(process.argv[2], 'utf8')))
  process.exitCode = r.status
} catch (err) {
  process.stderr.write(`[ERROR] ${err.message}\ncode=${err.code}\n`)
  process.exitCode = err.exitCode ?? 1
}
