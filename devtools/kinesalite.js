// kinesalite (npm) on 127.0.0.1 only: its own CLI listens on every interface.
// Usage: node devtools/kinesalite.js PACKAGE_DIR PORT [DATA_PATH]   (no DATA_PATH: in memory)
// SIGTERM ends it at once (Node's default): every write is already in LevelDB's log, so a restart finds it.
'use strict'
const [pkg, listenPort, path] = process.argv.slice(2)
const kinesalite = require(pkg)

const server = kinesalite({ path: path || undefined, shardLimit: 50 })
server.listen(Number(listenPort), '127.0.0.1', () => {
  const { address, port } = server.address()
  console.log('kinesalite listening at http://' + address + ':' + port)
})
