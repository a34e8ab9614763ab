import Foundation

/// A safe-state check's reading: whether it holds, what was read, and whether the device did not answer at all (as
/// opposed to answering with an error: a Modbus exception, a 503).
struct SafeReading: Sendable {
    var holds: Bool
    var readings: [String] = []
    var unreachable = false
}

/// The run's safety: what it moved (journaled before each move), the supervisor that watches the interlocks, and
/// the safe-state check that ends every run.
extension Runner {
    /// Journals that a device is about to be moved, and remembers it for the safe-state check. Called before the
    /// write or action is sent: a station killed while it is on the wire still knows the device may have moved.
    func noteActuation(_ reference: String, on bus: DeviceBus, _ what: String, step: Step?) {
        let device = bus.deviceName(of: reference) ?? String(reference.prefix { $0 != "." })
        let member = reference.split(separator: ".").last.map(String.init) ?? reference
        noteActuation(device: device, command: "\(device).\(member)\(what.isEmpty ? "" : " \(what)")", step: step?.id)
    }

    func noteActuation(device: String, command: String, step: String?) {
        remember(device: device, command: command)
        emit(.actuated(device: device, command: command, step: step))
    }

    /// Remembers a command sent to a device, for the safe-state check (which devices, in the order first moved).
    func remember(device: String, command: String) {
        state.withLock { state in
            if state.actuated[device] == nil { state.actuatedOrder.append(device) }
            state.actuated[device, default: []].append(command)
        }
    }

    /// Every device an interlock reads or its reaction moves, in the rack's order.
    var interlockDevices: [String] {
        var names = Set<String>()
        for interlock in settings.interlocks {
            names.formUnion(interlock.devices)
            names.formUnion(interlock.reaction.map(\.device))
        }
        return bus.configuration.rack.devices.map(\.name).filter { names.contains($0) }
    }

    /// Starts watching the interlocks, on the supervisor's own connections. A trip is journaled and recorded, and
    /// stops the steps (the runner then cleans up).
    func startSupervisor() -> (Supervisor, Task<Void, Never>)? {
        guard !settings.interlocks.isEmpty else { return nil }
        emit(.supervisorStarted(settings.interlocks))
        let supervisor = Supervisor(
            interlocks: settings.interlocks, bus: supervisorBus, clock: clock, stamp: { [self] in stamp($0) },
            onTrip: { [self] trip in
                for action in trip.reaction {
                    remember(device: String(action.action.prefix { $0 != "." }), command: action.action)
                }
                state.withLock { $0.trips.append(trip) }
                emit(.interlockTripped(trip))
                stop.requestStop(.interlock)
            })
        return (supervisor, supervisor.start())
    }

    /// Reads back every device the run moved against its profile's safe state. A device not shown safe is driven
    /// there (its profile's `drive`) and read again until its `settle` time runs out. Never cancelled: the rack must
    /// be known safe (or known not to be) before the run ends.
    /// - Parameter driveFirst: drive every device to its safe state before the first reading (recovery after a
    ///   crash: nobody knows what the rack did since), instead of only those read back unsafe.
    func checkSafeState(driveFirst: Bool = false) async -> SafeStateRecord {
        let devices = state.withLock { $0.actuatedOrder }
        let bus = self.bus
        let clock = self.clock
        let checked = await Task { () -> [SafeStateRecord.Device] in
            var results: [SafeStateRecord.Device] = []
            for device in devices {
                guard let safe = bus.configuration.profile(of: device)?.safeState else {
                    results.append(
                        .init(
                            device: device, check: "-", outcome: .undeclared, readings: [],
                            message: "its profile declares no safe_state"))
                    continue
                }
                let check = safe.check(for: device)
                var reading = driveFirst ? SafeReading(holds: false) : await Self.evaluate(check, on: bus)
                if reading.holds {
                    results.append(
                        .init(device: device, check: check.source, outcome: .verified, readings: reading.readings))
                    continue
                }
                // A device that does not answer at all cannot be driven or shown safe either (cleanup already tried):
                // it is reported at once, so a run against a dead link still ends in bounded time.
                if reading.unreachable {
                    results.append(
                        .init(
                            device: device, check: check.source, outcome: .unsafe, readings: reading.readings,
                            message: "it does not answer: check it by hand"))
                    continue
                }
                // Drive it, and read it back until its settle time runs out. A device that answers but refuses (a
                // Modbus exception, a busy BMC) is driven again each second: it may be back a moment later.
                var drove = await Self.drive(safe.actions(for: device), on: bus)
                reading = await Self.evaluate(check, on: bus)
                let deadline = clock.now() + safe.settle
                while !reading.holds, !reading.unreachable, !drove.unreachable, clock.now() < deadline {
                    do { try await clock.sleep(until: min(clock.now() + .seconds(1), deadline)) } catch { break }
                    if drove.results.contains(where: { !$0.succeeded }) {
                        drove = await Self.drive(safe.actions(for: device), on: bus)
                    }
                    reading = await Self.evaluate(check, on: bus)
                }
                let holds = reading.holds
                results.append(
                    .init(
                        device: device, check: check.source, outcome: holds ? .driven : .unsafe,
                        readings: reading.readings, drove: drove.results,
                        message: holds
                            ? (driveFirst
                                ? "driven to its safe state and read back"
                                : "not safe after cleanup; driven to its safe state")
                            : reading.unreachable || drove.unreachable
                                ? "it stopped answering while being driven: check it by hand"
                                : "not shown safe \(Quantity.format(safe.settle.seconds)) s after being driven"))
            }
            return results
        }.value
        let record = SafeStateRecord(
            verified: !checked.contains { $0.outcome == .unsafe }, at: stamp(clock.now()), devices: checked)
        emit(.safeStateChecked(record))
        return record
    }

    /// Waits for the operators a hazardous step needs: each identified by an id, each a different person. Automatic
    /// only where nobody is at a terminal and the rack is simulated (or a bench station declares it), and recorded so.
    func confirmHazard(_ step: Step, _ hazard: Step.Hazard) async throws -> HazardRecord {
        var record = HazardRecord(hazard: hazard.text, required: hazard.confirmBy)
        if let reason = settings.automaticHazards, !console.isInteractive {
            let at = stamp(clock.now())
            record.confirmations = (0..<hazard.confirmBy).map { _ in
                HazardRecord.Confirmation(operator: "automatic", at: at, automatic: reason)
            }
        } else {
            var problem: String?
            var refused: [String] = []
            while record.confirmations.count < hazard.confirmBy {
                try Task.checkCancellation()
                let answer = try await console.confirmHazard(
                    hazard.text, step: step, number: record.confirmations.count + 1, required: hazard.confirmBy,
                    problem: problem
                ).trimmingCharacters(in: .whitespaces)
                if let reason = Self.operatorIDProblem(answer) {
                    problem = reason
                } else if record.confirmations.contains(where: { $0.operator.lowercased() == answer.lowercased() }) {
                    problem = "operator \(answer) has confirmed already: a second, different operator must confirm"
                } else {
                    record.confirmations.append(.init(operator: answer, at: stamp(clock.now())))
                    problem = nil
                    continue
                }
                refused.append(problem ?? "")
                if refused.count >= 10 {
                    throw HazardNotConfirmed(step: step.name, hazard: hazard.text + "; refused 10 answers")
                }
            }
            if !refused.isEmpty { record.refused = refused }
        }
        emit(.hazardConfirmed(step, record))
        return record
    }

    /// Why an answer is not an operator id (a badge number or login: 2 to 32 letters, digits, '.', '_', '-').
    static func operatorIDProblem(_ answer: String) -> String? {
        let allowed = answer.unicodeScalars.allSatisfy { scalar in
            CharacterSet.alphanumerics.contains(scalar) || "._-".unicodeScalars.contains(scalar)
        }
        guard (2...32).contains(answer.count), allowed else {
            return "an operator id is 2 to 32 letters, digits, '.', '_' or '-' (your badge number)"
        }
        return nil
    }

    /// Evaluates a check, with the readings behind it; a device that cannot be read is not shown safe.
    static func evaluate(_ check: Expression, on bus: DeviceBus) async -> SafeReading {
        do {
            let values = try await bus.read(check.references.filter { $0.contains(".") })
            let readings = check.references.compactMap { name in values[name].map { "\(name) = \($0)" } }
            do {
                return SafeReading(holds: try check.evaluate(values) == .bool(true), readings: readings)
            } catch {
                return SafeReading(holds: false, readings: readings + [error.message])
            }
        } catch {
            return SafeReading(
                holds: false, readings: ["cannot read: \(error)"],
                unreachable: (error as? DeviceError)?.isNoResponse ?? true)
        }
    }

    /// Sends a device's safe-state drive, every action whatever the one before did.
    static func drive(
        _ actions: [SafetyAction], on bus: DeviceBus
    ) async -> (results: [InterlockTrip.ActionResult], unreachable: Bool) {
        var results: [InterlockTrip.ActionResult] = []
        var unreachable = false
        for action in actions {
            do {
                try await action.apply(on: bus)
                results.append(.init(action: action.description, succeeded: true, error: nil))
            } catch {
                results.append(.init(action: action.description, succeeded: false, error: "\(error)"))
                if (error as? DeviceError)?.isNoResponse ?? true { unreachable = true }
            }
        }
        return (results, unreachable)
    }

    /// The interlocks for the record: watched ones with their poll counts and trips, and waived ones.
    func interlockRecords(_ supervisor: Supervisor?) -> [InterlockRecord]? {
        let trips = state.withLock { $0.trips }
        var records = settings.interlocks.map { interlock in
            InterlockRecord(
                name: interlock.name, description: interlock.description, condition: interlock.condition.source,
                pollSeconds: interlock.poll.seconds, staleAfterSeconds: interlock.staleAfter.seconds,
                polls: supervisor?.polls(of: interlock.name).count,
                trip: trips.first { $0.interlock == interlock.name })
        }
        for (name, reason) in settings.waivers.sorted(by: { $0.key < $1.key }) {
            records.append(
                InterlockRecord(
                    name: name, description: settings.waivedDescriptions[name] ?? name,
                    condition: settings.waivedConditions[name] ?? "", waived: reason))
        }
        return records.isEmpty ? nil : records
    }
}
