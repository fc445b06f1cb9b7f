package mysqlproxy

// Backend health is the pool's (pool/health.go): it pings idle backends
// with COM_PING through backend.Ping, and when every backend is down and
// the last login failed, refuses waiting and new commands with
// pool.ErrUnavailable, answered ERR 9003.

// Available reports whether the proxy believes the backend server can be
// reached (false once every connection is down and reconnecting fails).
func (p *Proxy) Available() bool { return p.pool.Available() }
