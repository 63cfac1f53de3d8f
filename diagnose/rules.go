package diagnose

// Rules returns every rule of the engine, in a fixed order.
func Rules() []Rule {
	return []Rule{
		TimeoutRule{},
		ConnectFailureRule{},
		CircuitBreakerRule{},
		UpstreamResetRule{},
		NoHealthyUpstreamRule{},
		RetriesExhaustedRule{},
		NoRouteRule{},
		MTLSRule{},
		FilterDenialsRule{},
		CertExpiryRule{},
		ConfigRejectedRule{},
		ProxyLogRule{},
		WarmingRule{},
		LatencyRule{},
		LatencyAttributionRule{},
		StatsDisabledRule{},
		SidecarRule{},
		SidecarQoSRule{},
		ServicePortProtocolRule{},
		AppErrorRule{},
		CPUThrottlingRule{},
		NodeCPUStealRule{},
		NodeIORule{},
		NodeLimitsRule{},
		AmbientRule{},
	}
}
