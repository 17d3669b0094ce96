package sim_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	. "github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// runTool runs one of libimobiledevice's tools against the simulator.
func runTool(t *testing.T, s *Sim, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	path := simtest.RequireTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(cmd.Environ(), "USBMUXD_SOCKET_ADDRESS="+s.Address())
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v timed out; output:\n%s", name, args, out)
	}
	return string(out), err
}

func TestIdeviceIDListsEveryDevice(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{}, DeviceConfig{ConnType: Network}, DeviceConfig{Name: "Third"})
	usb, err := runTool(t, s, 20*time.Second, "idevice_id", "-l")
	if err != nil {
		t.Fatalf("idevice_id -l: %v\n%s", err, usb)
	}
	network, err := runTool(t, s, 20*time.Second, "idevice_id", "-n")
	if err != nil {
		t.Fatalf("idevice_id -n: %v\n%s", err, network)
	}
	for _, d := range devs {
		// -l lists USB devices, -n the ones usbmuxd reaches over Wi-Fi.
		list, other := usb, network
		if d.Config().ConnType == Network {
			list, other = network, usb
		}
		if !strings.Contains(list, d.UDID()) || strings.Contains(other, d.UDID()) {
			t.Errorf("%s device %s: -l gave\n%s\n-n gave\n%s", d.Config().ConnType, d.UDID(), usb, network)
		}
	}
	out, err := runTool(t, s, 20*time.Second, "idevice_id", devs[2].UDID())
	if err != nil || strings.TrimSpace(out) != "Third" {
		t.Errorf("idevice_id UDID: %v %q", err, out)
	}
	devs[2].Unplug()
	out, _ = runTool(t, s, 20*time.Second, "idevice_id", "-l")
	if strings.Contains(out, devs[2].UDID()) {
		t.Errorf("unplugged device still listed:\n%s", out)
	}
}

func TestIdeviceinfo(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Name: "Anna's iPhone", ProductVersion: "17.4.1"})
	udid := devs[0].UDID()
	out, err := runTool(t, s, 30*time.Second, "ideviceinfo", "-u", udid)
	if err != nil {
		t.Fatalf("ideviceinfo: %v\n%s", err, out)
	}
	for _, want := range []string{"DeviceName: Anna's iPhone", "ProductVersion: 17.4.1", "UniqueDeviceID: " + udid} {
		if !strings.Contains(out, want) {
			t.Errorf("ideviceinfo output lacks %q:\n%s", want, out)
		}
	}
	out, err = runTool(t, s, 30*time.Second, "ideviceinfo", "-u", udid, "-q", "com.apple.mobile.battery", "-k", "BatteryCurrentCapacity")
	if err != nil || strings.TrimSpace(out) != "80" {
		t.Errorf("battery: %v %q", err, out)
	}
}

func TestIdevicepairValidate(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{}, DeviceConfig{Pairing: Forgotten})
	out, err := runTool(t, s, 30*time.Second, "idevicepair", "-u", devs[0].UDID(), "validate")
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("validate paired: %v\n%s", err, out)
	}
	out, err = runTool(t, s, 30*time.Second, "idevicepair", "-u", devs[1].UDID(), "validate")
	if err == nil || strings.Contains(out, "SUCCESS") {
		t.Fatalf("validate forgotten host should fail: %v\n%s", err, out)
	}
}

func TestIdevicepairPairTrustDialog(t *testing.T) {
	s, devs := simtest.StartT(t, DeviceConfig{Pairing: Unpaired}, DeviceConfig{Pairing: Unpaired})
	trusting, refusing := devs[0], devs[1]

	out, err := runTool(t, s, 30*time.Second, "idevicepair", "-u", trusting.UDID(), "pair")
	if err == nil || !strings.Contains(out, "trust dialog") {
		t.Fatalf("first pair should report the pending trust dialog: %v\n%s", err, out)
	}
	if !trusting.TrustPending() {
		t.Fatal("device shows no trust dialog after a pair attempt")
	}
	trusting.TapTrust()
	out, err = runTool(t, s, 30*time.Second, "idevicepair", "-u", trusting.UDID(), "pair")
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("pair after Trust: %v\n%s", err, out)
	}
	if _, ok := s.PairRecord(trusting.UDID()); !ok {
		t.Fatal("no pair record saved in usbmuxd after pairing")
	}
	out, err = runTool(t, s, 30*time.Second, "idevicepair", "-u", trusting.UDID(), "validate")
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("validate after pairing: %v\n%s", err, out)
	}
	out, err = runTool(t, s, 30*time.Second, "ideviceinfo", "-u", trusting.UDID(), "-k", "DeviceName")
	if err != nil || !strings.Contains(out, trusting.Config().Name) {
		t.Fatalf("session with the new pair record: %v\n%s", err, out)
	}

	_, _ = runTool(t, s, 30*time.Second, "idevicepair", "-u", refusing.UDID(), "pair")
	refusing.TapDontTrust()
	out, err = runTool(t, s, 30*time.Second, "idevicepair", "-u", refusing.UDID(), "pair")
	if err == nil || !strings.Contains(out, "denied") {
		t.Fatalf("pair after Don't Trust should report the denial: %v\n%s", err, out)
	}
}
