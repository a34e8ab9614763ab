import AcceptanceCore
import Foundation
import Reports
import Simulation

/// Everything a run reads from files, loaded once and checked before anything connects: the procedure against the
/// rack (with the station's fitted models and group sizes), the station or the scenario, the firmware manifests,
/// parameters and inputs, and the signing key.
public struct RunInputs: Sendable {
    public let procedure: Procedure
    public let procedureFile: String
    public let configuration: RackConfiguration
    /// Warnings found while loading (shown, not fatal).
    public let warnings: [Diagnostic]
    /// The station, or nil for the built-in simulated rack.
    public let station: StationConfiguration?
    /// The simulation scenario, when there is no station.
    public let scenario: Scenario?
    public let manifests: [String: FirmwareManifest]
    public let parameters: [String: Quantity]
    public let textParameters: [String: String]
    /// The key that signs the bundle (checked: readable by its owner only), if any.
    public let signingKeyPath: String?
    /// That key, read once when the run is prepared (its raw bytes: the key type is not `Sendable`).
    let signingKey: Data?

    /// The station file or the scenario file: what the attestation names as the run's configuration.
    public let configurationFile: String?
    /// The interlocks to watch: the rack's with the station's changes, less those it waives.
    public let interlocks: [Interlock]
    /// Interlocks the station waives, with its reasons, and what they would have watched.
    public let waived: [(interlock: Interlock, reason: String)]
    /// Limits of the procedure this run changes.
    public var deviations: [DeviationRecord] = []
    /// The limit set the procedure's limits come from (its values are then the procedure's defaults).
    public var limitSet: LimitSetRecord?

    /// Every device the interlocks read or their reactions move.
    public var watchedDevices: [String] {
        var names = Set<String>()
        for interlock in interlocks {
            names.formUnion(interlock.devices)
            names.formUnion(interlock.reaction.map(\.device))
        }
        return configuration.rack.devices.map(\.name).filter { names.contains($0) }
    }

    /// The devices the procedure uses, group members included.
    public var usedDevices: [String] {
        var needed = procedure.devices
        for group in procedure.deviceGroups { needed += configuration.rack.group(named: group)?.members ?? [] }
        return needed
    }

    public static func load(_ request: RunRequest) throws(HarnessError) -> RunInputs {
        let path = try request.workspace.procedureFile(request.procedure)
        var station: StationConfiguration?
        var scenario: Scenario?
        var counts: [String: Int] = [:]
        if let name = request.station {
            let loaded = try StationConfiguration.load(named: name, workspace: request.workspace)
            counts = loaded.groupCounts
            station = loaded
        } else {
            let known = Scenario.available(in: request.workspace.scenarios)
            guard known.contains(request.scenario) else {
                throw .unknownName(what: "scenario", name: request.scenario, known: known)
            }
            do {
                let loaded = try Scenario.load(named: request.scenario, in: request.workspace.scenarios)
                counts = loaded.redfish.powerShelves.map { ["power_shelves": $0] } ?? [:]
                scenario = loaded
            } catch {
                throw .invalidFiles(error)
            }
        }
        let loader = ProcedureLoader(
            fixtures: request.workspace.fixtures, protocols: Transports.protocols,
            groupCounts: counts, models: station?.models ?? request.models)
        let checked = loader.check(path: path)
        guard var procedure = checked.procedure, let configuration = checked.configuration, !checked.hasErrors else {
            throw .invalidFiles(DiagnosticsError(checked.diagnostics))
        }
        var limitSet: LimitSetRecord?
        if let (record, applied) = try Self.limitSet(for: procedure, request: request, station: station) {
            procedure = applied
            limitSet = record
        }
        let parameters: [String: Quantity]
        let texts: [String: String]
        do {
            parameters = try procedure.resolveParameters(request.parameters)
            texts = try procedure.resolveTextParameters(request.parameters)
        } catch {
            throw .parameter(error)
        }
        var deviations = try Self.deviations(procedure, parameters, texts, request: request, station: station)
        if let limitSet {
            // Changed from the limit set's value: the set is the baseline, and the record says so.
            for index in deviations.indices where limitSet.values[deviations[index].parameter] != nil {
                deviations[index].procedureValue += " (limit set \(limitSet.name))"
            }
            // At a station, a set it does not pin is chosen on the line: each of its values is a deviation from the
            // procedure, allowed only where deviations are, with a reason, and approved before it is archived.
            if let station, station.limitPins[procedure.id] == nil {
                guard station.allowDeviations else {
                    throw .deviation(
                        "station '\(station.id)' pins no limit set for '\(procedure.id)': judging this rack by limit set "
                            + "'\(limitSet.name)' is a deviation from the procedure's limits, which this station does not "
                            + "allow (pin the set: limits: {\(procedure.id): {file: …, sha256: …}} in its station file)"
                    )
                }
                guard let reason = request.deviationReason?.trimmingCharacters(in: .whitespaces), !reason.isEmpty else {
                    throw .deviation(
                        "limit set '\(limitSet.name)' is not pinned at station '\(station.id)': using it is a deviation "
                            + "that needs --deviation-reason")
                }
                for name in limitSet.values.keys.sorted() where !deviations.contains(where: { $0.parameter == name }) {
                    guard let value = limitSet.values[name], let before = limitSet.procedureValues[name],
                        value != before
                    else { continue }
                    deviations.append(
                        DeviationRecord(
                            parameter: name, procedureValue: before,
                            value: "\(value) (limit set \(limitSet.name), not pinned by the station)", reason: reason,
                            by: request.operatorName ?? station.operatorName ?? "unknown"))
                }
            }
        }
        let manifests = try FirmwareManifests.load(from: request.workspace.fixtures)
        // The signing key is checked before anything runs: a key readable by others is refused, not used.
        let keyPath = request.signingKey ?? station?.signingKey
        var signingKey: Data?
        if let keyPath {
            do {
                signingKey = try SigningKeys.loadPrivate(keyPath).rawRepresentation
            } catch {
                throw .unsupported("signing key: \(error)")
            }
        }
        let known = Set(procedure.inputs.map(\.name))
        for name in request.inputs.keys.sorted() where !known.contains(name) && name != "rack_serial" {
            throw .input(
                "procedure '\(procedure.id)' asks for no input '\(name)'"
                    + (known.isEmpty ? "" : " (it asks for \(known.sorted().joined(separator: ", ")))"))
        }
        let (interlocks, waived) = try Self.interlocks(configuration, station: station)
        return RunInputs(
            procedure: procedure, procedureFile: path, configuration: configuration,
            warnings: checked.diagnostics.filter { $0.severity == .warning }, station: station,
            scenario: scenario, manifests: manifests, parameters: parameters, textParameters: texts,
            signingKeyPath: keyPath, signingKey: signingKey,
            configurationFile: station?.file ?? "\(request.workspace.scenarios)/\(request.scenario).yaml",
            interlocks: interlocks, waived: waived, deviations: deviations, limitSet: limitSet)
    }

    /// The file of a limit set, by name (`Fixtures/limits/<name>.yaml`) or path; a name that is not there is a
    /// usage error with the closest one.
    public static func limitSetFile(_ requested: String, workspace: Workspace) throws(HarnessError) -> String {
        let folder = "\(workspace.fixtures)/limits"
        let byPath = requested.contains("/") || requested.hasSuffix(".yaml")
        let path = byPath ? requested : "\(folder)/\(requested).yaml"
        guard FileManager.default.fileExists(atPath: path) else {
            if byPath { throw .input("no limit set file \(requested)") }
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
                .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
            throw .unknownName(what: "limit set", name: requested, known: known)
        }
        return path
    }

    /// The limit set this run uses: the one the station pins for the procedure (its digest checked), or the one
    /// `--limits` names; the procedure with the set's values as its defaults. A station that pins a set refuses
    /// another.
    static func limitSet(
        for procedure: Procedure, request: RunRequest, station: StationConfiguration?
    ) throws(HarnessError) -> (LimitSetRecord, Procedure)? {
        let pin = station?.limitPins[procedure.id]
        var path = try request.limits.map { requested throws(HarnessError) in
            try limitSetFile(requested, workspace: request.workspace)
        }
        if let pin {
            if let chosen = path,
                URL(fileURLWithPath: chosen).standardizedFileURL.path
                    != URL(fileURLWithPath: pin.file).standardizedFileURL.path
            {
                throw .deviation(
                    "station '\(station?.id ?? "")' judges '\(procedure.id)' by the limit set it pins (\(pin.file)); "
                        + "--limits \(request.limits ?? "") would judge this rack by other limits")
            }
            path = pin.file
        }
        guard let path else { return nil }
        let set: LimitSet
        do {
            set = try LimitSet.load(path: path)
        } catch {
            throw .invalidFiles(error)
        }
        if let pin, set.sha256 != pin.sha256 {
            throw .unsupported(
                "limit set \(path) has SHA-256 \(set.sha256), but station '\(station?.id ?? "")' pins \(pin.sha256): "
                    + "the file changed after it was reviewed and pinned. Nothing was run; review the file and pin its new "
                    + "digest (sha256sum \(path)) in the station file")
        }
        let applied: Procedure
        do {
            applied = try set.apply(to: procedure)
        } catch {
            throw .invalidFiles(error)
        }
        var values: [String: String] = [:]
        var defaults: [String: String] = [:]
        for (name, _, _) in set.values {
            guard let before = procedure.parameter(named: name), let after = applied.parameter(named: name) else {
                continue
            }
            values[name] = after.text ?? after.defaultValue.description
            defaults[name] = before.text ?? before.defaultValue.description
        }
        let record = LimitSetRecord(
            name: set.name, title: set.title, file: (path as NSString).lastPathComponent, sha256: set.sha256,
            values: values, procedureValues: defaults)
        return (record, applied)
    }

    /// The procedure's limits this run changes. At a station a changed limit is refused unless the station allows
    /// deviations, and then it needs a reason; on the simulated rack it is allowed and still recorded.
    static func deviations(
        _ procedure: Procedure, _ values: [String: Quantity], _ texts: [String: String], request: RunRequest,
        station: StationConfiguration?
    ) throws(HarnessError) -> [DeviationRecord] {
        let limits = procedure.limitParameters
        var found: [DeviationRecord] = []
        for name in request.parameters.keys.sorted() where limits.contains(name) {
            guard let parameter = procedure.parameter(named: name) else { continue }
            let before: String
            let after: String
            if let text = parameter.text {
                before = text
                after = texts[name] ?? text
            } else {
                let value = values[name] ?? parameter.defaultValue
                let same = (try? value.converted(to: parameter.defaultValue.unit).value) == parameter.defaultValue.value
                if same { continue }
                before = parameter.defaultValue.description
                after = value.description
            }
            if before == after { continue }
            if let station {
                guard station.allowDeviations else {
                    throw .deviation(
                        "'\(name)' is a limit of procedure '\(procedure.id)' (\(before)); station '\(station.id)' does not "
                            + "allow deviations from a procedure's limits (allow_deviations: true in its station file)")
                }
                guard let reason = request.deviationReason?.trimmingCharacters(in: .whitespaces), !reason.isEmpty else {
                    throw .deviation(
                        "'\(name)' is a limit of procedure '\(procedure.id)' (\(before) → \(after)): a deviation needs "
                            + "--deviation-reason (it goes in the record, the report and the signature)")
                }
            }
            found.append(
                DeviationRecord(
                    parameter: name, procedureValue: before, value: after,
                    reason: request.deviationReason ?? (station == nil ? "simulated rack" : ""),
                    by: request.operatorName ?? station?.operatorName ?? "unknown"))
        }
        return found
    }

    /// The rack's interlocks with the station's changes over them, less those it waives (each waiver must name one).
    static func interlocks(
        _ configuration: RackConfiguration, station: StationConfiguration?
    ) throws(HarnessError) -> ([Interlock], [(interlock: Interlock, reason: String)]) {
        guard let station else { return (configuration.interlocks, []) }
        let (all, problems) = configuration.bindInterlocks(configuration.rack.interlocks, overrides: station.interlocks)
        var diagnostics = problems
        for (name, waiver) in station.waivers.sorted(by: { $0.key < $1.key })
        where !all.contains(where: { $0.name == name }) {
            diagnostics.append(
                Diagnostic(
                    at: waiver.location,
                    "station '\(station.id)' waives interlock '\(name)', which rack '\(configuration.rack.id)' does not "
                        + "have (it has \(all.map(\.name).joined(separator: ", ")))"))
        }
        if !diagnostics.isEmpty { throw .invalidFiles(DiagnosticsError(diagnostics)) }
        let watched = all.filter { station.waivers[$0.name] == nil }
        let waived = all.compactMap { interlock in station.waivers[interlock.name].map { (interlock, $0.reason) } }
        return (watched, waived)
    }
}

extension StationConfiguration {
    /// A station file, by path or by name in `Fixtures/stations`.
    public static func load(named name: String, workspace: Workspace) throws(HarnessError) -> StationConfiguration {
        let path = name.contains("/") || name.hasSuffix(".yaml") ? name : "\(workspace.fixtures)/stations/\(name).yaml"
        guard FileManager.default.fileExists(atPath: path) else {
            guard path != name else { throw .unsupported("no station file \(path)") }
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: "\(workspace.fixtures)/stations")) ?? [])
                .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
            throw .unknownName(what: "station", name: name, known: known)
        }
        do {
            return try StationConfiguration.load(path: path, connectors: Transports.connectors)
        } catch {
            throw .invalidFiles(error)
        }
    }
}
