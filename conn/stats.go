package conn

import "sync/atomic"

type counter struct{ n atomic.Int64 }

type stats struct {
	Accepted     atomic.Uint64
	Refused      atomic.Uint64
	AcceptErrors atomic.Uint64
}
