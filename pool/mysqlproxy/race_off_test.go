//go:build !race

package mysqlproxy

const raceEnabled = false
