import AcceptanceCore

/// A line's shared equipment as a gate for its bays' steps: a step that uses one of a resource's devices waits until
/// no other bay's step holds that resource, then holds it until it ends. Resources are taken in name order, so two
/// steps needing the same two never wait for each other in a circle.
public final class LineResources: StepGate {
    let resources: [(resource: LineConfiguration.Resource, turns: TurnTaking)]

    public init(_ resources: [LineConfiguration.Resource]) {
        self.resources = resources.sorted { $0.name < $1.name }.map { ($0, TurnTaking()) }
    }

    public func enter(
        _ step: Step, of procedure: Procedure, waiting: @Sendable (String) -> Void
    ) async throws -> (release: @Sendable () -> Void, waited: String?) {
        let used = Set(procedure.devices(of: step))
        let needed = resources.filter { !$0.resource.devices.isDisjoint(with: used) }
        guard !needed.isEmpty else { return ({}, nil) }
        let clock = ContinuousClock()
        let start = clock.now
        var held: [TurnTaking] = []
        var waitedFor: [String] = []
        do {
            for (resource, turns) in needed {
                if turns.isBusy {
                    waiting("\(resource.name) (another bay is using it)")
                    waitedFor.append(resource.name)
                }
                try await turns.acquire()
                held.append(turns)
            }
        } catch {
            for turns in held { turns.release() }
            throw error
        }
        let waited = (clock.now - start).seconds
        let release: @Sendable () -> Void = { [held] in for turns in held.reversed() { turns.release() } }
        guard !waitedFor.isEmpty else { return (release, nil) }
        return (release, "\(waitedFor.joined(separator: ", ")), \(Quantity.format((waited * 10).rounded() / 10)) s")
    }
}
