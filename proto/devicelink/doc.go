// Package devicelink speaks DeviceLink, the message layer that
// com.apple.mobilebackup2 rides on, for both ends of the wire: our host
// engine and the simulated iPhone.
//
// A DeviceLink message is a 4-byte big-endian length followed by a plist
// array whose first element names the message ("DLMessageProcessMessage",
// "DLMessageUploadFiles", ...). Between some messages the two ends switch to
// a raw file-transfer framing, in two variants: Upload (device → host,
// DLMessageUploadFiles) and Download (host → device,
// DLMessageDownloadFiles). FileWriter and FileReader speak both; they
// stream through bounded buffers, so a multi-gigabyte file never sits in
// memory.
//
// Everything read from the peer is untrusted. Decoders enforce size limits
// (message size, block size, name length, plist depth and expansion) and
// report bad input as an error wrapping ErrProtocol; they never panic.
package devicelink
