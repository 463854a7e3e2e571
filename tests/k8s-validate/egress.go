package main

import (
	"net"
	"net/url"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkEgress checks every NetworkPolicy that restricts the outgoing traffic of the gate's
// Pod: a rule must allow TCP to the upstream's port, and, when the upstream is a host name,
// another must allow DNS over UDP. Without them /readyz fails and the Pod never serves.
// Peers are not compared with the upstream's address, which the render does not know.
func checkEgress(cluster *Cluster, gate Gate, failures *Failures) {
	upstream, err := url.Parse(gate.Settings.Upstream)
	if err != nil {
		return // check-config reports an invalid --upstream
	}
	host := upstream.Hostname()
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return // NetworkPolicy does not apply to traffic inside the Pod
	}
	port := upstream.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[upstream.Scheme]
	}

	for _, named := range cluster.NetworkPolicies {
		policy := named.Object
		if !selects(&policy.Spec.PodSelector, gate.Named.Object) || !slices.Contains(policy.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			continue
		}
		if !egressAllows(policy.Spec.Egress, corev1.ProtocolTCP, port) {
			failures.Add(named.Document, "no egress rule allows TCP port %s, where --upstream %q listens", port, gate.Settings.Upstream)
		}
		if ip == nil && !egressAllows(policy.Spec.Egress, corev1.ProtocolUDP, "53") {
			failures.Add(named.Document, "no egress rule allows DNS (UDP port 53), which resolving the upstream host %q needs", host)
		}
	}
}

// egressAllows reports whether a rule allows a protocol and numeric port: a rule without
// ports allows every port. Named ports are not resolved and count as no match.
func egressAllows(rules []networkingv1.NetworkPolicyEgressRule, protocol corev1.Protocol, port string) bool {
	number, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		return false
	}
	for _, rule := range rules {
		if len(rule.Ports) == 0 {
			return true
		}
		for _, allowed := range rule.Ports {
			allowedProtocol := corev1.ProtocolTCP
			if allowed.Protocol != nil {
				allowedProtocol = *allowed.Protocol
			}
			if allowedProtocol != protocol {
				continue
			}
			if allowed.Port == nil {
				return true
			}
			if allowed.Port.Type != intstr.Int {
				continue
			}
			last := allowed.Port.IntVal
			if allowed.EndPort != nil {
				last = *allowed.EndPort
			}
			if int32(number) >= allowed.Port.IntVal && int32(number) <= last {
				return true
			}
		}
	}
	return false
}
