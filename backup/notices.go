package backup

import "github.com/backupd/backupd/proto/devicelink"

// unanswered takes a device message the host does not handle, and does
// not answer it. A phone may send messages that expect no answer: a
// repeated DLMessageDeviceReady, or a notice of a newer iOS. An answer
// to one would be read by the phone as the answer to its next request,
// and every answer after it would be one late. libimobiledevice does not
// answer them either. A phone that did expect an answer is waiting, and
// the stall timeout ends that.
func (s *session) unanswered(name string) error {
	if name == devicelink.MsgDeviceReady {
		s.log.Debug("mobilebackup2: the device says again it is ready")
		return nil
	}
	s.log.Warn("mobilebackup2: unknown device message, not answered", "message", name)
	return nil
}
