package pgsql

import "github.com/weir-gw/weir/internal/command"

// riskSet is a set of command.Risk as a bit mask, so that the walk can raise
// risks without allocating and the output has one canonical order.
type riskSet uint32

// riskOrder is the order risks are reported in: the order of their
// declaration in package command. The index of a risk is its bit.
var riskOrder = [...]command.Risk{
	command.RiskDynamicSQL,
	command.RiskFileAccess,
	command.RiskNetworkAccess,
	command.RiskProgramExec,
	command.RiskRoleChange,
	command.RiskSearchPath,
	command.RiskReadOnlyEscape,
	command.RiskWritableCTE,
	command.RiskSelectInto,
	command.RiskSettingChange,
	command.RiskServerSignal,
	command.RiskUnknownFunction,
	command.RiskCopy,
	command.RiskLock,
	command.RiskNotify,
}

const (
	rDynamicSQL riskSet = 1 << iota
	rFileAccess
	rNetworkAccess
	rProgramExec
	rRoleChange
	rSearchPath
	rReadOnlyEscape
	rWritableCTE
	rSelectInto
	rSettingChange
	rServerSignal
	rUnknownFunction
	rCopy
	rLock
	rNotify
)

// list returns the risks in canonical order, nil when there are none.
func (s riskSet) list() []command.Risk {
	if s == 0 {
		return nil
	}
	n := 0
	for v := s; v != 0; v &= v - 1 {
		n++
	}
	out := make([]command.Risk, 0, n)
	for i, r := range riskOrder {
		if s&(1<<i) != 0 {
			out = append(out, r)
		}
	}
	return out
}
