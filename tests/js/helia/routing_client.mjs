// Queries an IPFS HTTP Routing V1 endpoint with Helia's client
// (@helia/delegated-routing-v1-http-api-client) and prints what it got as
// one JSON line: {"providers":[{id,addrs,protocols}]} or {"peers":[...]}.
// Usage: node routing_client.mjs <url> providers <cid>
//        node routing_client.mjs <url> peers <peer id>
import { delegatedRoutingV1HttpApiClient } from '@helia/delegated-routing-v1-http-api-client'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromCID, peerIdFromString } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'

const [url, what, arg] = process.argv.slice(2)
const client = delegatedRoutingV1HttpApiClient({ url, cacheTTL: 0, timeout: 60000 })({ logger: defaultLogger() })
await client.start()
const records = []
const it = what === 'providers'
  ? client.getProviders(CID.parse(arg))
  : client.getPeers(peerIdFromString(arg).toCID())
for await (const r of it) {
  records.push({
    id: peerIdFromCID(r.ID).toString(),
    addrs: (r.Addrs ?? []).map(String),
    protocols: r.Protocols ?? []
  })
}
await client.stop()
process.stdout.write(JSON.stringify({ [what]: records }) + '\n')
process.exit(0)
