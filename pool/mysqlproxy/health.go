package mysqlproxy

import (
	"fmt"

	"github.com/scalestack/scalestack/mysqlwire"
)

// Backend health is the pool's (pool/health.go): it pings idle backends
// with COM_PING through backend.Ping, and when every backend is down and
// the last login failed, refuses waiting and new commands with
// pool.ErrUnavailable, answered ERR 9003.

// Available reports whether the proxy believes the backend server can be
// reached (false once every connection is down and reconnecting fails).
func (p *Proxy) Available() bool { return p.pool.Available() }

// Ping implements pool.Server: COM_PING on an idle backend.
func (b *backend) Ping() {
	b.sendCommand(dutyPing, mysqlwire.ComPing)
}

// onPingPacket handles the answer to a health check: OK puts the backend
// back, anything else drops the connection (it reconnects).
func (b *backend) onPingPacket(payload []byte) {
	prog, err := b.tracker.Feed(payload)
	if err == nil && prog != mysqlwire.Complete {
		err = errBackendProtocol
	}
	if err == nil {
		if code, _, failed := b.tracker.Err(); failed {
			err = fmt.Errorf("mysqlproxy: health check answered ERR %d", code)
		}
	}
	if err != nil {
		b.pb.Abort(err)
		return
	}
	b.duty = dutyNone
	b.pb.Pinged()
}
