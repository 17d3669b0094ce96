package main

import (
	"fmt"

	"github.com/backupd/backupd/usbmux"
)

// usbmuxdEnv is the variable libusbmuxd, go-ios and netmuxd users set to
// point the tools at another usbmuxd (usbmuxd2 or netmuxd for Wi-Fi).
const usbmuxdEnv = "USBMUXD_SOCKET_ADDRESS"

// usbmuxdFromEnv fills an empty usbmuxd key from USBMUXD_SOCKET_ADDRESS,
// as config.example.toml promises: the key wins, then the variable, then
// the platform's default (left to the daemon). A variable backupd cannot
// read is a configuration error, said as such.
func (c *fileConfig) usbmuxdFromEnv(getenv func(string) string) error {
	v := getenv(usbmuxdEnv)
	if c.Usbmuxd != "" || v == "" {
		return nil
	}
	if _, err := usbmux.ParseAddr(v); err != nil {
		return &configError{[]string{fmt.Sprintf("%s=%q (the environment; the usbmuxd key is empty): %v", usbmuxdEnv, v, err)}}
	}
	c.Usbmuxd = v
	return nil
}
