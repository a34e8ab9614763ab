/// An interlock as a run watched it, for the record: what it was, how often it was polled, whether the station
/// waived it, and its trip if it tripped.
public struct InterlockRecord: Sendable, Codable, Hashable {
    public var name: String
    public var description: String
    public var condition: String
    public var pollSeconds: Double?
    public var staleAfterSeconds: Double?
    /// The station's reason for not watching it, when it waived it.
    public var waived: String?
    /// How many times it was polled.
    public var polls: Int?
    public var trip: InterlockTrip?

    public init(
        name: String, description: String, condition: String, pollSeconds: Double? = nil,
        staleAfterSeconds: Double? = nil, waived: String? = nil, polls: Int? = nil, trip: InterlockTrip? = nil
    ) {
        self.name = name
        self.description = description
        self.condition = condition
        self.pollSeconds = pollSeconds
        self.staleAfterSeconds = staleAfterSeconds
        self.waived = waived
        self.polls = polls
        self.trip = trip
    }

    enum CodingKeys: String, CodingKey {
        case name, description, condition, waived, polls, trip
        case pollSeconds = "poll_s"
        case staleAfterSeconds = "stale_after_s"
    }
}

/// The safe-state check that ends every run: each device the run moved, read back against its profile's safe state
/// (driven there first if it was not).
public struct SafeStateRecord: Sendable, Codable, Hashable {
    public struct Device: Sendable, Codable, Hashable {
        public enum Outcome: String, Sendable, Codable, Hashable {
            /// Read back in its safe state.
            case verified
            /// Not in its safe state after cleanup; the harness drove it there and read it back.
            case driven
            /// Not shown in its safe state: someone must make it safe by hand.
            case unsafe = "NOT SAFE"
            /// Its profile declares no safe state to check.
            case undeclared
        }

        public var device: String
        public var check: String
        public var outcome: Outcome
        /// What was read (the last reading): `cdu.pump_enable = false`.
        public var readings: [String]
        /// What the harness did to drive it there, when it had to.
        public var drove: [InterlockTrip.ActionResult]?
        public var message: String?
    }

    /// True when every device checked is shown in its safe state.
    public var verified: Bool
    public var at: String
    public var devices: [Device]

    /// One line: `safe state verified: cdu` or what was not.
    public var summary: String {
        if devices.isEmpty { return "safe state: nothing was actuated" }
        let unsafe = devices.filter { $0.outcome == .unsafe }
        if unsafe.isEmpty {
            return "safe state verified: "
                + devices.filter { $0.outcome != .undeclared }.map(\.device)
                .joined(separator: ", ")
        }
        return "rack NOT in its safe state: "
            + unsafe.map { "\($0.device) (\($0.check): \($0.readings.joined(separator: ", ")))" }
            .joined(separator: "; ")
    }
}

/// How a run that the station did not finish (killed, power lost) was recovered and recorded afterwards.
public struct RecoveryRecord: Sendable, Codable, Hashable {
    /// When `acceptance recover` ran.
    public var recoveredAt: String
    public var recoveredBy: String?
    /// The last event the journal holds from the run itself.
    public var lastJournalEvent: String?
    /// What the journal says the run had commanded last, by device (`cdu.pump_enable ← false`).
    public var lastCommanded: [String: [String]]

    public init(recoveredAt: String, recoveredBy: String?, lastJournalEvent: String?, lastCommanded: [String: [String]])
    {
        self.recoveredAt = recoveredAt
        self.recoveredBy = recoveredBy
        self.lastJournalEvent = lastJournalEvent
        self.lastCommanded = lastCommanded
    }

    enum CodingKeys: String, CodingKey {
        case recoveredAt = "recovered_at"
        case recoveredBy = "recovered_by"
        case lastJournalEvent = "last_journal_event"
        case lastCommanded = "last_commanded"
    }
}

/// A hazardous step's confirmations, in the record (and so under the bundle's signature): who accepted the hazard,
/// when, and whether a person did (`automatic` says why not: the simulated rack, a bench station's declaration).
public struct HazardRecord: Sendable, Codable, Hashable {
    public struct Confirmation: Sendable, Codable, Hashable {
        /// The operator's id as they typed it (a badge number), or `automatic`.
        public var `operator`: String
        public var at: String
        /// Why nobody confirmed it by hand, when nobody did.
        public var automatic: String?

        public init(operator: String, at: String, automatic: String? = nil) {
            self.operator = `operator`
            self.at = at
            self.automatic = automatic
        }
    }

    public var hazard: String
    /// How many different operators had to confirm.
    public var required: Int
    public var confirmations: [Confirmation]
    /// Answers refused on the way (the same operator twice, an id that is not one).
    public var refused: [String]?

    public init(hazard: String, required: Int, confirmations: [Confirmation] = [], refused: [String]? = nil) {
        self.hazard = hazard
        self.required = required
        self.confirmations = confirmations
        self.refused = refused
    }

    /// `confirmed by 4711 and 0815`, `confirmed automatically (simulated rack)`.
    public var summary: String {
        if let reason = confirmations.first?.automatic { return "confirmed automatically (\(reason))" }
        return "confirmed by " + confirmations.map(\.operator).joined(separator: " and ")
    }
}

/// A hazardous step nobody could confirm: no person at a terminal on a real station (`--yes` confirms no hazard).
public struct HazardNotConfirmed: Error, Sendable, CustomStringConvertible {
    public var step: String
    public var hazard: String
    public var description: String {
        "'\(step)' is hazardous (\(hazard)) and needs an identified operator at a terminal to confirm it; --yes and "
            + "a run without a terminal confirm no hazard on a real station. Nothing was done"
    }

    public init(step: String, hazard: String) {
        self.step = step
        self.hazard = hazard
    }
}
