// Runs the js-ipfs CLI (`ipfs/src/cli.js`) with the same arguments, but keeps
// the daemon alive on an unhandled promise rejection. js-ipfs 0.66.1 leaks a
// rejected promise when a bitswap want is aborted (e.g. `cat ...&timeout=1s`
// of a file with a missing block), and its CLI exits on any unhandled
// rejection; a Kubo node answers such a call with an error and keeps running,
// which is what disco's tests need from it.
const once = process.once.bind(process)
process.once = (event, listener) =>
  event === 'unhandledRejection' ? process : once(event, listener)
process.on('unhandledRejection', (err) => {
  console.error('jsipfs.mjs: ignored unhandled rejection:', err?.message ?? err)
})
await import('./node_modules/ipfs/src/cli.js')
