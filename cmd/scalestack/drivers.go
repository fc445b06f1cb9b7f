package main

import (
	"fmt"

	"github.com/scalestack/scalestack/reactor"
	"github.com/scalestack/scalestack/ring"
)

func driverByName(name string) (reactor.NewDriverFunc, error) {
	switch name {
	case "epoll", "":
		return reactor.NewEpoll, nil
	case "uring":
		return ring.New, nil
	}
	return nil, fmt.Errorf("unknown --io %q (want epoll or uring)", name)
}
