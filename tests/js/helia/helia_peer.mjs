// A Helia 7 node as a test peer for disco (run with node_modules/.bin/node,
// Node 22). Listens on 127.0.0.1 only, has no routers, no peer discovery and
// no HTTP gateways: content moves only over bitswap with peers it is told
// about. One JSON request per stdin line, one JSON reply per stdout line:
//   {"cmd":"id"} -> {"id","addrs"}
//   {"cmd":"add","path"} -> {"cid"}   (Kubo's `add --cid-version=1` layout)
//   {"cmd":"connect","addr"} -> {"ok"}
//   {"cmd":"download","cid","dest"} -> {"ok","error"?}
//   {"cmd":"pin","cid"} -> {"ok","blocks"}  (fetches the whole DAG)
//   {"cmd":"peers"} -> {"peers":[peer id,...]}
//   {"cmd":"quit"}
import { createReadStream, createWriteStream } from 'node:fs'
import { once } from 'node:events'
import readline from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'

const helia = withBitswap(withLibp2pLight(createHeliaLight({}), {
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  peerDiscovery: [],
  services: { identify: identify() }
}))
await helia.start()
const fs = unixfs(helia)
const addOptions = {
  cidVersion: 1,
  rawLeaves: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 })
}

const reply = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  const req = JSON.parse(line)
  try {
    if (req.cmd === 'id') {
      reply({ id: helia.libp2p.peerId.toString(), addrs: helia.libp2p.getMultiaddrs().map(String) })
    } else if (req.cmd === 'add') {
      const cid = await fs.addByteStream(createReadStream(req.path), addOptions)
      reply({ cid: cid.toString() })
    } else if (req.cmd === 'connect') {
      await helia.libp2p.dial(multiaddr(req.addr))
      reply({ ok: true })
    } else if (req.cmd === 'download') {
      const out = createWriteStream(req.dest)
      for await (const chunk of fs.cat(CID.parse(req.cid), { signal: AbortSignal.timeout(120000) })) {
        if (!out.write(chunk)) await once(out, 'drain')
      }
      out.end()
      await once(out, 'finish')
      reply({ ok: true })
    } else if (req.cmd === 'pin') {
      let blocks = 0
      for await (const _ of helia.pins.add(CID.parse(req.cid), { signal: AbortSignal.timeout(120000) })) blocks++
      reply({ ok: true, blocks })
    } else if (req.cmd === 'peers') {
      reply({ peers: helia.libp2p.getConnections().map(c => c.remotePeer.toString()) })
    } else if (req.cmd === 'quit') {
      await helia.stop()
      reply({ ok: true })
      break
    }
  } catch (e) {
    reply({ ok: false, error: String(e && e.stack || e) })
  }
}
process.exit(0)
