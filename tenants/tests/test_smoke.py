def test_balances_empty(api_a):
    response = api_a.get("/api/v1/balances")
    assert response.status_code == 200, response.content
    assert response.json() == {"results": []}
