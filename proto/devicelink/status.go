package devicelink

import (
	"fmt"

	"github.com/backupd/backupd/proto/wire"
)

// StatusResponse is the host's answer to a device request:
// ["DLMessageStatusResponse", code, description, payload].
type StatusResponse struct {
	// Code is 0 on success, a negative DeviceLink error code otherwise
	// (see ErrorCode), or CodeMultiStatus with per-file errors in Payload.
	Code int64
	// Description is empty when the peer sent EmptyParameter.
	Description string
	// Payload is nil when the peer sent EmptyParameter.
	Payload any
}

// SendStatusResponse sends a DLMessageStatusResponse. An empty description
// and a nil payload travel as EmptyParameter.
func (c *Conn) SendStatusResponse(code int64, description string, payload any) error {
	var d any = description
	if description == "" {
		d = EmptyParameter
	}
	if payload == nil {
		payload = EmptyParameter
	}
	return c.WriteMessage(MsgStatusResponse, code, d, payload)
}

// ReadStatusResponse reads a message that must be a
// DLMessageStatusResponse.
func (c *Conn) ReadStatusResponse() (StatusResponse, error) {
	msg, err := c.ExpectMessage(MsgStatusResponse)
	if err != nil {
		return StatusResponse{}, err
	}
	return ParseStatusResponse(msg)
}

// ParseStatusResponse interprets a decoded DLMessageStatusResponse.
func ParseStatusResponse(msg []any) (StatusResponse, error) {
	if len(msg) < 2 {
		return StatusResponse{}, fmt.Errorf("%w: %s with %d elements", ErrProtocol, MsgStatusResponse, len(msg))
	}
	code, ok := wire.Int(msg[1])
	if !ok {
		return StatusResponse{}, fmt.Errorf("%w: status code is %T", ErrProtocol, msg[1])
	}
	r := StatusResponse{Code: code}
	if len(msg) > 2 {
		switch d := msg[2].(type) {
		case string:
			if d != EmptyParameter {
				r.Description = d
			}
		default:
			return StatusResponse{}, fmt.Errorf("%w: status description is %T", ErrProtocol, msg[2])
		}
	}
	if len(msg) > 3 {
		if s, ok := msg[3].(string); !ok || s != EmptyParameter {
			r.Payload = msg[3]
		}
	}
	return r, nil
}

// FileError is one entry of a multi-status payload.
type FileError struct {
	Code    int64
	Message string
}

// MultiStatus builds the payload of a CodeMultiStatus response.
func MultiStatus(errs map[string]FileError) map[string]any {
	out := make(map[string]any, len(errs))
	for path, e := range errs {
		out[path] = map[string]any{"DLFileErrorCode": e.Code, "DLFileErrorString": e.Message}
	}
	return out
}

// ParseMultiStatus reads the per-path errors of a CodeMultiStatus
// response. Entries that are not dictionaries are protocol errors.
func ParseMultiStatus(payload any) (map[string]FileError, error) {
	d, ok := payload.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: multi-status payload is %T", ErrProtocol, payload)
	}
	out := make(map[string]FileError, len(d))
	for path, v := range d {
		e, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: multi-status entry %q is %T", ErrProtocol, path, v)
		}
		var fe FileError
		if c, ok := wire.Int(e["DLFileErrorCode"]); ok {
			fe.Code = c
		}
		fe.Message, _ = e["DLFileErrorString"].(string)
		out[path] = fe
	}
	return out, nil
}
