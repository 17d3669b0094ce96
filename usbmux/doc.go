// Package usbmux watches usbmuxd for iPhones, tells whether each is present,
// trusted and on a stable cable, and talks lockdown with typed errors.
package usbmux
