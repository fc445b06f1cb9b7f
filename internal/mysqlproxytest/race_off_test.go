//go:build !race

package mysqlproxytest

const raceEnabled = false
