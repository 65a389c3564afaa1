//go:build !purego

package kernels

import "syscall"

// amxEnable asks Linux for the AMX tile data state (arch_prctl ARCH_REQ_XCOMP_PERM with
// XFEATURE_XTILEDATA, Linux 5.16 and later): without it the first tile instruction faults. It
// reports whether the request was granted; the permission holds for the whole process.
func amxEnable() bool {
	const (
		sysArchPrctl      = 158 // SYS_arch_prctl on amd64
		archReqXcompPerm  = 0x1023
		xfeatureXtiledata = 18
	)
	_, _, errno := syscall.RawSyscall(sysArchPrctl, archReqXcompPerm, xfeatureXtiledata, 0)
	return errno == 0
}
