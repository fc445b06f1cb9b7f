package main

import (
	"fmt"

	"github.com/scalestack/scalestack/reactor"
	"github.com/scalestack/scalestack/ring"
)

// driverByName maps --io to a driver constructor. io_uring is probed first
// so that a kernel or sandbox without it gives a clear error at start-up
// rather than a failure inside a loop.
func driverByName(name string) (reactor.NewDriverFunc, error) {
	switch name {
	case "epoll", "":
		return reactor.NewEpoll, nil
	case "uring":
		if err := ring.Available(); err != nil {
			return nil, fmt.Errorf("--io uring: io_uring is not usable here: %w", err)
		}
		return ring.New, nil
	}
	return nil, fmt.Errorf("unknown --io %q (want epoll or uring)", name)
}
