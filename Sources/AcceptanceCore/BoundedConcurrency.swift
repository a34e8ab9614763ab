/// Work over many devices at once, but never more than a limit at a time: a rack has 27 BMCs, and a BMC or a
/// station's network serves only so many requests together.
public enum BoundedConcurrency {
    /// Runs `body` for every element, at most `limit` at once, and returns the results in the elements' order.
    /// `onEach` is told of each result as it comes, on the caller's task. The first failure cancels the rest and is
    /// thrown once they have ended.
    public static func map<Element: Sendable, Output: Sendable, Failure: Error>(
        _ elements: [Element], limit: Int,
        _ body: @escaping @Sendable (Element) async throws(Failure) -> Output,
        onEach: (Output) -> Void = { _ in }
    ) async throws(Failure) -> [Output] {
        let outcome = await withTaskGroup(of: (Int, Result<Output, Failure>).self) {
            group -> Result<[Output], Failure> in
            var results = [Output?](repeating: nil, count: elements.count)
            var failure: Failure?
            var next = 0
            func start() {
                guard next < elements.count, failure == nil else { return }
                let index = next
                let element = elements[index]
                next += 1
                group.addTask {
                    do throws(Failure) {
                        return (index, .success(try await body(element)))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            for _ in 0..<min(max(limit, 1), elements.count) { start() }
            while let (index, result) = await group.next() {
                switch result {
                case let .success(output):
                    results[index] = output
                    onEach(output)
                case let .failure(error):
                    if failure == nil {
                        failure = error
                        group.cancelAll()
                    }
                }
                start()
            }
            if let failure { return .failure(failure) }
            return .success(results.compactMap { $0 })
        }
        return try outcome.get()
    }
}
