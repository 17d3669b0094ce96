// Package backupcrypt is the cryptography of an encrypted iPhone backup,
// for both sides: the keybag in Manifest.plist (BackupKeyBag) with its
// TLV format, the key derived from the backup password, the class keys it
// unlocks and the per-file keys they unwrap (AES key wrap, RFC 3394), and
// the AES-256-CBC content of Manifest.db and of every file, decrypted or
// encrypted as a stream.
//
// The host reads backups with it; the simulated iPhone writes real
// encrypted backups with it. Nothing here writes a password or a key
// anywhere, and errors never include them.
package backupcrypt
