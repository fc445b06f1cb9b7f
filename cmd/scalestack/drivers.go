package main

import (
	"fmt"

	"github.com/scalestack/scalestack/reactor"
)

func driverByName(name string) (reactor.NewDriverFunc, error) {
	switch name {
	case "epoll", "":
		return reactor.NewEpoll, nil
	case "uring":
		return nil, fmt.Errorf("io_uring driver not built in yet")
	}
	return nil, fmt.Errorf("unknown --io %q (want epoll or uring)", name)
}
