// kinesalite (npm) on 127.0.0.1 only: its own CLI listens on every interface.
// Usage: node devtools/kinesalite.js PACKAGE_DIR PORT [DATA_PATH]   (no DATA_PATH: in memory)
'use strict'
const [pkg, port, path] = process.argv.slice(2)
const kinesalite = require(pkg)

const server = kinesalite({ path: path || undefined, shardLimit: 50 })
server.listen(Number(port), '127.0.0.1', () => {
  console.log('kinesalite listening at http://127.0.0.1:' + server.address().port)
})
for (const signal of ['SIGTERM', 'SIGINT']) {
  // Close the LevelDB store cleanly, then exit (a second signal exits at once).
  process.once(signal, () => server.close(() => process.exit(0)))
}
